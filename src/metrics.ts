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

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
