// Structured test pictures for perceptual hashing: photo-like content (not noise, whose hash
// would be arbitrary), the same pixels for the same seed.

/** A small deterministic pseudo-random generator (mulberry32), so that a seed gives the same image. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rgb = [number, number, number];

/**
 * A synthetic "photo": a two-colour gradient sky at a random angle, soft coloured blobs (light and
 * shadow), a few hard-edged rectangles and ellipses (objects) and a little grain. Smooth,
 * structured content like a real photo, not white noise; the same seed always gives the same pixels.
 */
export function syntheticPhoto(seed: number, width: number, height: number): Buffer {
  const next = random(seed * 7919 + 17);
  const colour = (): Rgb => [next() * 255, next() * 255, next() * 255];
  const angle = next() * Math.PI * 2;
  const [dx, dy] = [Math.cos(angle), Math.sin(angle)];
  const from = colour();
  const to = colour();
  const blobs = Array.from({ length: 4 + Math.floor(next() * 5) }, () => ({
    cx: next() * width,
    cy: next() * height,
    r2: (40 + next() * 160) ** 2,
    colour: colour(),
    strength: 0.5 + next() * 0.5,
  }));
  const shapes = Array.from({ length: 2 + Math.floor(next() * 4) }, () => ({
    ellipse: next() < 0.5,
    cx: next() * width,
    cy: next() * height,
    rx: 30 + next() * 150,
    ry: 30 + next() * 120,
    colour: colour(),
  }));

  const raw = Buffer.alloc(width * height * 3);
  const pixel: Rgb = [0, 0, 0];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + ((x - width / 2) * dx + (y - height / 2) * dy) / width));
      for (let c = 0; c < 3; c++) pixel[c] = from[c]! + (to[c]! - from[c]!) * t;
      for (const blob of blobs) {
        const w = blob.strength * Math.exp(-((x - blob.cx) ** 2 + (y - blob.cy) ** 2) / blob.r2);
        for (let c = 0; c < 3; c++) pixel[c] = pixel[c]! * (1 - w) + blob.colour[c]! * w;
      }
      for (const shape of shapes) {
        const u = (x - shape.cx) / shape.rx;
        const v = (y - shape.cy) / shape.ry;
        const inside = shape.ellipse ? u * u + v * v <= 1 : Math.abs(u) <= 1 && Math.abs(v) <= 1;
        if (inside) for (let c = 0; c < 3; c++) pixel[c] = shape.colour[c]!;
      }
      const grain = (next() - 0.5) * 12;
      const offset = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) raw[offset + c] = Math.max(0, Math.min(255, Math.round(pixel[c]! + grain)));
    }
  }
  return raw;
}
