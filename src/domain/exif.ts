import exifReader from 'exif-reader';

type Tags = Readonly<Record<string, unknown>>;

/**
 * EXIF as `exif-reader` parses it (tag names from the EXIF/Exiv2 tables), typed loosely: its own
 * declarations cannot hold the `Date`s it returns for date tags, and a damaged IFD comes back `null`.
 */
export interface ParsedExif {
  Image?: Tags | null;
  Photo?: Tags | null;
  GPSInfo?: Tags | null;
  [ifd: string]: unknown;
}

export interface ExifGps {
  /** Decimal degrees, north positive. */
  latitude: number;
  /** Decimal degrees, east positive. */
  longitude: number;
  /** Metres above sea level (negative below); `null` when the file has none. */
  altitude: number | null;
}

/**
 * The camera facts shown on an asset. A field is left out when the file does not have it (or has
 * nonsense in it); an image without any of them gets `null` instead of an empty object.
 */
export interface CuratedExif {
  make?: string;
  model?: string;
  lens?: string;
  /** Seconds. */
  exposureTime?: number;
  /** The exposure time as photographers write it: "1/250" below a second, "2" or "1.5" (seconds) above. */
  exposureTimeText?: string;
  /** The aperture's f-number, e.g. 2.8. */
  fNumber?: number;
  iso?: number;
  /** Millimetres (real focal length of the lens). */
  focalLength?: number;
  /** Millimetres, 35 mm film equivalent. */
  focalLength35mm?: number;
  /**
   * When the picture was taken, ISO 8601. EXIF stores the camera's wall-clock time without a zone;
   * with `OffsetTimeOriginal` (EXIF 2.31) the offset is appended (`2024-05-06T07:08:09+02:00`),
   * otherwise the string has no zone (`2024-05-06T07:08:09`) and means local time wherever the
   * camera was: converting it to UTC would invent a zone we do not know.
   */
  takenAt?: string;
  /** Only when the project allows GPS (`exposeGps`); coordinates locate people's homes. */
  gps?: ExifGps;
}

export interface CurateExifOptions {
  /** Copy GPS coordinates onto the result (a project setting, off unless the owner turns it on). */
  exposeGps: boolean;
}

const MAX_TEXT = 100;

/** Parses raw EXIF bytes (`Exif\0\0` + TIFF structure, as sharp returns them); `null` when unreadable. */
export function parseExif(bytes: Buffer | undefined): ParsedExif | null {
  if (!bytes || bytes.length < 8) return null;
  try {
    return exifReader(bytes);
  } catch {
    // Damaged EXIF is common (editors truncate it) and never a reason to refuse the picture.
    return null;
  }
}

/**
 * Picks the facts worth showing out of parsed EXIF. It copies fields by name from an allow-list,
 * so everything private that cameras write (serial numbers, owner and artist names, maker notes,
 * embedded thumbnails, user comments) is left behind without having to be listed; GPS is copied
 * only when `exposeGps` is set.
 */
export function curateExif(parsed: ParsedExif | null, options: CurateExifOptions): CuratedExif | null {
  if (!parsed) return null;
  const photo = parsed.Photo ?? {};
  const image = parsed.Image ?? {};
  const out: CuratedExif = {};

  const make = text(image.Make);
  if (make) out.make = make;
  const model = text(image.Model);
  if (model) out.model = model;
  const lens = text(photo.LensModel);
  if (lens) out.lens = lens;

  const exposure =
    positive(photo.ExposureTime) ?? positive(image.ExposureTime) ?? apexToSeconds(photo.ShutterSpeedValue);
  if (exposure !== undefined) {
    out.exposureTime = roundTo(exposure, 6);
    out.exposureTimeText = exposureText(exposure);
  }
  const fNumber = positive(photo.FNumber) ?? positive(image.FNumber) ?? apexToFNumber(photo.ApertureValue);
  if (fNumber !== undefined) out.fNumber = roundTo(fNumber, 1);
  const iso = positive(photo.ISOSpeedRatings) ?? positive(photo.ISOSpeed) ?? positive(image.ISOSpeedRatings);
  if (iso !== undefined) out.iso = Math.round(iso);
  const focal = positive(photo.FocalLength) ?? positive(image.FocalLength);
  if (focal !== undefined) out.focalLength = roundTo(focal, 1);
  // 0 means "unknown" in this tag.
  const focal35 = positive(photo.FocalLengthIn35mmFilm);
  if (focal35 !== undefined) out.focalLength35mm = Math.round(focal35);

  const takenAt =
    exifDateTime(photo.DateTimeOriginal, photo.SubSecTimeOriginal, photo.OffsetTimeOriginal) ??
    exifDateTime(photo.DateTimeDigitized, photo.SubSecTimeDigitized, photo.OffsetTimeDigitized);
  if (takenAt) out.takenAt = takenAt;

  if (options.exposeGps) {
    const gps = gpsPosition(parsed.GPSInfo);
    if (gps) out.gps = gps;
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** "1/250" below a second (when it is close to such a fraction), else seconds like "0.3", "2", "1.5". */
export function exposureText(seconds: number): string {
  if (seconds < 1) {
    const denominator = Math.round(1 / seconds);
    // Cameras store 1/250 as 0.004 or 10/2500; only call it 1/n when that is what it is (within 5 %).
    if (denominator >= 2 && Math.abs(1 / denominator - seconds) / seconds < 0.05) return `1/${denominator}`;
  }
  return String(roundTo(seconds, seconds < 1 ? 2 : 1));
}

/** Degrees + minutes + seconds (EXIF's three rationals) and a hemisphere letter to signed degrees. */
export function dmsToDegrees(dms: unknown, ref: unknown, negativeRef: 'S' | 'W'): number | undefined {
  if (!Array.isArray(dms) || dms.length === 0) return undefined;
  const [d = 0, m = 0, s = 0] = dms.map((v) => (typeof v === 'number' ? v : Number.NaN));
  if (![d, m, s].every((v) => Number.isFinite(v) && v >= 0)) return undefined;
  const degrees = d + m / 60 + s / 3600;
  const sign = typeof ref === 'string' && ref.trim().toUpperCase() === negativeRef ? -1 : 1;
  return sign * degrees;
}

function gpsPosition(gps: Tags | null | undefined): ExifGps | undefined {
  if (!gps) return undefined;
  const latitude = dmsToDegrees(gps.GPSLatitude, gps.GPSLatitudeRef, 'S');
  const longitude = dmsToDegrees(gps.GPSLongitude, gps.GPSLongitudeRef, 'W');
  if (latitude === undefined || longitude === undefined) return undefined;
  if (Math.abs(latitude) > 90 || Math.abs(longitude) > 180) return undefined;
  const rawAltitude =
    typeof gps.GPSAltitude === 'number' && Number.isFinite(gps.GPSAltitude) ? gps.GPSAltitude : null;
  // GPSAltitudeRef 1 = below sea level.
  const altitude =
    rawAltitude === null ? null : roundTo(gps.GPSAltitudeRef === 1 ? -rawAltitude : rawAltitude, 1);
  // Six decimals are ~0.1 m: more than any phone's GPS knows.
  return { latitude: roundTo(latitude, 6), longitude: roundTo(longitude, 6), altitude };
}

/**
 * EXIF date + sub-seconds + offset to ISO 8601. exif-reader returns the wall-clock fields as if
 * they were UTC (`Date.UTC(...)`), so the UTC fields are the camera's local time.
 */
function exifDateTime(date: unknown, subSec: unknown, offset: unknown): string | undefined {
  if (!(date instanceof Date) || Number.isNaN(date.getTime())) return undefined;
  // Cameras without a set clock write "0000:00:00 00:00:00", which Date.UTC turns into 1899/1900.
  if (date.getUTCFullYear() <= 1900) return undefined;
  let iso = date.toISOString().slice(0, 19);
  const fraction = typeof subSec === 'string' ? /^\s*(\d{1,3})/.exec(subSec)?.[1] : undefined;
  if (fraction) iso += `.${fraction.padEnd(3, '0')}`;
  const zone =
    typeof offset === 'string' ? /^\s*([+-](?:0\d|1[0-4]):[0-5]\d)\s*$/.exec(offset)?.[1] : undefined;
  if (zone) iso += zone === '+00:00' || zone === '-00:00' ? 'Z' : zone;
  return iso;
}

/** A printable, trimmed string of at most MAX_TEXT characters from an EXIF text value. */
function text(value: unknown): string | undefined {
  let raw: string;
  if (typeof value === 'string') raw = value;
  else if (Buffer.isBuffer(value)) {
    // exif-reader hands back non-ASCII text as bytes; most writers use UTF-8, old ones Latin-1.
    try {
      raw = new TextDecoder('utf-8', { fatal: true }).decode(value);
    } catch {
      raw = value.toString('latin1');
    }
  } else return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL padding and control bytes are what we strip
  const clean = raw.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean === '' ? undefined : clean.slice(0, MAX_TEXT);
}

/** A finite positive number (the first of an array, as some writers store single values as arrays). */
function positive(value: unknown): number | undefined {
  const n = Array.isArray(value) ? value[0] : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

/** APEX shutter speed value Tv: t = 2^-Tv seconds. */
function apexToSeconds(tv: unknown): number | undefined {
  if (typeof tv !== 'number' || !Number.isFinite(tv) || Math.abs(tv) > 30) return undefined;
  return 2 ** -tv;
}

/** APEX aperture value Av: N = 2^(Av/2). */
function apexToFNumber(av: unknown): number | undefined {
  if (typeof av !== 'number' || !Number.isFinite(av) || av < 0 || av > 30) return undefined;
  return 2 ** (av / 2);
}

function roundTo(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
