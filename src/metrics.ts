import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { JobQueue } from './queue/job-queue.js';

/**
 * Prometheus metrics. One registry per container (not prom-client's global), so tests and several
 * apps in one process never mix their numbers.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  private readonly httpDuration: Histogram<'method' | 'route'>;
  private readonly stepDuration: Histogram<'kind' | 'step' | 'status'>;
  private readonly stepFailures: Counter<'kind' | 'step'>;
  private readonly imgRequests: Counter<'outcome'>;
  private readonly imgTransforms: Counter<'format' | 'result'>;
  private readonly imgTransformDuration: Histogram<'format'>;
  private readonly imgQueue: Gauge<'state'>;

  constructor(options: { queue?: JobQueue | undefined; defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false)
      collectDefaultMetrics({ register: this.registry, prefix: 'assetpipe_' });
    this.httpRequests = new Counter({
      name: 'assetpipe_http_requests_total',
      help: 'HTTP requests by method, route and status code.',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'assetpipe_http_request_duration_seconds',
      help: 'HTTP request duration by method and route.',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.stepDuration = new Histogram({
      name: 'assetpipe_pipeline_step_duration_seconds',
      help: 'Pipeline step duration by media kind, step and outcome.',
      labelNames: ['kind', 'step', 'status'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.stepFailures = new Counter({
      name: 'assetpipe_pipeline_step_failures_total',
      help: 'Failed pipeline step attempts by media kind and step.',
      labelNames: ['kind', 'step'],
      registers: [this.registry],
    });
    this.imgRequests = new Counter({
      name: 'assetpipe_img_requests_total',
      help: 'On-demand image requests by outcome: hit (cache or eager rendition), miss (transformed), merged (joined an identical transform in flight), rejected (transform queue full).',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.imgTransforms = new Counter({
      name: 'assetpipe_img_transforms_total',
      help: 'On-demand image transforms performed, by output format and result (ok, failed, timeout).',
      labelNames: ['format', 'result'],
      registers: [this.registry],
    });
    this.imgTransformDuration = new Histogram({
      name: 'assetpipe_img_transform_duration_seconds',
      help: 'Duration of on-demand image transforms (decode, operations, encode) by output format.',
      labelNames: ['format'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.imgQueue = new Gauge({
      name: 'assetpipe_img_transform_queue',
      help: 'On-demand image transforms running and waiting for a slot in this process.',
      labelNames: ['state'],
      registers: [this.registry],
    });
    this.imgQueue.set({ state: 'running' }, 0);
    this.imgQueue.set({ state: 'waiting' }, 0);
    const queue = options.queue;
    if (queue) {
      new Gauge({
        name: 'assetpipe_queue_jobs',
        help: 'Jobs in the queue by kind and status.',
        labelNames: ['kind', 'status'],
        registers: [this.registry],
        async collect() {
          this.reset();
          const counts = await queue.counts();
          for (const [kind, byStatus] of Object.entries(counts)) {
            for (const [status, count] of Object.entries(byStatus)) this.set({ kind, status }, count);
          }
        },
      });
    }
  }

  observeHttp(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
    this.httpDuration.observe({ method, route }, seconds);
  }

  observeStep(kind: string, step: string, status: 'succeeded' | 'failed', durationMs: number): void {
    this.stepDuration.observe({ kind, step, status }, durationMs / 1000);
    if (status === 'failed') this.stepFailures.inc({ kind, step });
  }

  countImgRequest(outcome: 'hit' | 'miss' | 'merged' | 'rejected'): void {
    this.imgRequests.inc({ outcome });
  }

  observeImgTransform(format: string, result: 'ok' | 'failed' | 'timeout', seconds: number): void {
    this.imgTransforms.inc({ format, result });
    this.imgTransformDuration.observe({ format }, seconds);
  }

  setImgQueue(state: { running: number; waiting: number }): void {
    this.imgQueue.set({ state: 'running' }, state.running);
    this.imgQueue.set({ state: 'waiting' }, state.waiting);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
