import { describe, expect, it } from 'vitest';
import {
  type CuratedExif,
  curateExif,
  dmsToDegrees,
  exposureText,
  type ParsedExif,
  parseExif,
} from './exif.js';

/** exif-reader returns EXIF wall-clock times as Date.UTC of the fields. */
function exifDate(text: string): Date {
  const [d = '', t = ''] = text.split(' ');
  const [y, mo, da] = d.split(':').map(Number);
  const [h, mi, s] = t.split(':').map(Number);
  return new Date(Date.UTC(y ?? 0, (mo ?? 1) - 1, da ?? 0, h ?? 0, mi ?? 0, s ?? 0));
}

const camera: ParsedExif = {
  bigEndian: false,
  Image: {
    Make: 'Canon',
    Model: 'Canon EOS R5',
    Artist: 'Jane Doe',
    Copyright: 'Jane Doe 2024',
    HostComputer: 'janes-laptop',
    CameraSerialNumber: '0123456789',
  },
  Photo: {
    ExposureTime: 0.004,
    FNumber: 2.8,
    ISOSpeedRatings: 400,
    FocalLength: 50,
    FocalLengthIn35mmFilm: 50,
    LensModel: 'RF50mm F1.8 STM',
    DateTimeOriginal: exifDate('2024:05:06 07:08:09'),
    OffsetTimeOriginal: '+02:00',
    BodySerialNumber: '12345',
    LensSerialNumber: '67890',
    CameraOwnerName: 'Jane',
    MakerNote: Buffer.from('secret maker note'),
    UserComment: Buffer.from('my home'),
    ImageUniqueID: 'abcdef',
  },
  GPSInfo: {
    GPSLatitudeRef: 'N',
    GPSLatitude: [48, 51, 29.64],
    GPSLongitudeRef: 'E',
    GPSLongitude: [2, 17, 40.08],
    GPSAltitudeRef: 0,
    GPSAltitude: 35,
  },
  Thumbnail: { Compression: 6, JPEGInterchangeFormat: 1234 },
};

describe('curateExif', () => {
  it('keeps the camera facts and nothing private', () => {
    const curated = curateExif(camera, { exposeGps: false });
    expect(curated).toEqual({
      make: 'Canon',
      model: 'Canon EOS R5',
      lens: 'RF50mm F1.8 STM',
      exposureTime: 0.004,
      exposureTimeText: '1/250',
      fNumber: 2.8,
      iso: 400,
      focalLength: 50,
      focalLength35mm: 50,
      takenAt: '2024-05-06T07:08:09+02:00',
    });
    const serialised = JSON.stringify(curated);
    for (const secret of [
      'Jane',
      '12345',
      '67890',
      '0123456789',
      'janes-laptop',
      'secret',
      'my home',
      'abcdef',
    ]) {
      expect(serialised).not.toContain(secret);
    }
  });

  it('adds GPS only when the project allows it', () => {
    expect(curateExif(camera, { exposeGps: false })?.gps).toBeUndefined();
    const gps = curateExif(camera, { exposeGps: true })?.gps;
    expect(gps?.latitude).toBeCloseTo(48.858233, 5);
    expect(gps?.longitude).toBeCloseTo(2.2944667, 5);
    expect(gps?.altitude).toBe(35);
  });

  it.each<[string, Record<string, unknown>, CuratedExif['gps']]>([
    [
      'south and west are negative, below sea level too',
      {
        GPSLatitudeRef: 'S',
        GPSLatitude: [33, 51, 36],
        GPSLongitudeRef: 'W',
        GPSLongitude: [70, 39, 0],
        GPSAltitudeRef: 1,
        GPSAltitude: 12.5,
      },
      { latitude: -33.86, longitude: -70.65, altitude: -12.5 },
    ],
    [
      'no altitude',
      { GPSLatitudeRef: 'N', GPSLatitude: [10, 30, 0], GPSLongitudeRef: 'E', GPSLongitude: [20, 15, 0] },
      { latitude: 10.5, longitude: 20.25, altitude: null },
    ],
    ['latitude only: no position', { GPSLatitudeRef: 'N', GPSLatitude: [10, 0, 0] }, undefined],
    [
      'out of range: dropped',
      { GPSLatitudeRef: 'N', GPSLatitude: [95, 0, 0], GPSLongitudeRef: 'E', GPSLongitude: [20, 0, 0] },
      undefined,
    ],
    [
      'division by zero in a rational: dropped',
      {
        GPSLatitudeRef: 'N',
        GPSLatitude: [Number.NaN, 0, 0],
        GPSLongitudeRef: 'E',
        GPSLongitude: [20, 0, 0],
      },
      undefined,
    ],
  ])('GPS: %s', (_name, gpsInfo, expected) => {
    const curated = curateExif(
      { bigEndian: false, Image: { Make: 'X' }, GPSInfo: gpsInfo },
      { exposeGps: true },
    );
    expect(curated?.gps).toEqual(expected);
  });

  it.each<[string, Record<string, unknown>, string | undefined]>([
    [
      'with an offset',
      { DateTimeOriginal: exifDate('2023:12:31 23:59:58'), OffsetTimeOriginal: '-05:00' },
      '2023-12-31T23:59:58-05:00',
    ],
    [
      'UTC offset is Z',
      { DateTimeOriginal: exifDate('2023:12:31 23:59:58'), OffsetTimeOriginal: '+00:00' },
      '2023-12-31T23:59:58Z',
    ],
    [
      'no offset: local time without zone',
      { DateTimeOriginal: exifDate('2023:01:02 03:04:05') },
      '2023-01-02T03:04:05',
    ],
    [
      'sub-seconds',
      {
        DateTimeOriginal: exifDate('2023:01:02 03:04:05'),
        SubSecTimeOriginal: '07',
        OffsetTimeOriginal: '+09:00',
      },
      '2023-01-02T03:04:05.070+09:00',
    ],
    [
      'a malformed offset is ignored',
      { DateTimeOriginal: exifDate('2023:01:02 03:04:05'), OffsetTimeOriginal: 'CET' },
      '2023-01-02T03:04:05',
    ],
    ['a clock never set (0000:00:00)', { DateTimeOriginal: exifDate('0000:00:00 00:00:00') }, undefined],
    ['a date exif-reader could not parse', { DateTimeOriginal: null }, undefined],
    [
      'digitised time when there is no original',
      { DateTimeDigitized: exifDate('2020:02:29 12:00:00'), OffsetTimeDigitized: '+01:00' },
      '2020-02-29T12:00:00+01:00',
    ],
  ])('takenAt: %s', (_name, photo, expected) => {
    const curated = curateExif(
      { bigEndian: false, Image: { Make: 'X' }, Photo: photo },
      { exposeGps: false },
    );
    expect(curated?.takenAt).toBe(expected);
  });

  it.each<[string, Record<string, unknown>, Partial<CuratedExif>]>([
    [
      'APEX values when the plain ones are missing',
      { ShutterSpeedValue: 8, ApertureValue: 4 },
      { exposureTime: 0.003906, exposureTimeText: '1/256', fNumber: 4 },
    ],
    [
      'zero and infinite values are dropped',
      { ExposureTime: Number.POSITIVE_INFINITY, FNumber: 0, FocalLengthIn35mmFilm: 0 },
      {},
    ],
    ['ISO stored as an array', { ISOSpeedRatings: [800, 0] }, { iso: 800 }],
    ['long exposure', { ExposureTime: 2.5 }, { exposureTime: 2.5, exposureTimeText: '2.5' }],
  ])('exposure: %s', (_name, photo, expected) => {
    const curated = curateExif(
      { bigEndian: false, Image: { Make: 'X' }, Photo: photo },
      { exposeGps: false },
    );
    expect(curated).toEqual({ make: 'X', ...expected });
  });

  it('cleans text: NUL padding, control characters, UTF-8 bytes, overlong values', () => {
    const curated = curateExif(
      {
        bigEndian: false,
        Image: { Make: 'NIKON CORPORATION\u0000\u0000  ', Model: Buffer.from('Caméra\u0001X', 'utf8') },
        Photo: { LensModel: 'L'.repeat(500) },
      },
      { exposeGps: false },
    );
    expect(curated).toEqual({ make: 'NIKON CORPORATION', model: 'Caméra X', lens: 'L'.repeat(100) });
  });

  it('is null when there is nothing worth showing', () => {
    expect(curateExif(null, { exposeGps: true })).toBeNull();
    expect(
      curateExif({ bigEndian: true, Image: { Orientation: 6, XResolution: 72 } }, { exposeGps: true }),
    ).toBeNull();
    // GPS alone, hidden: nothing left.
    expect(curateExif({ bigEndian: true, GPSInfo: camera.GPSInfo }, { exposeGps: false })).toBeNull();
  });
});

describe('exposureText', () => {
  it.each([
    [0.004, '1/250'],
    [1 / 8000, '1/8000'],
    [1 / 3, '1/3'],
    [0.5, '1/2'],
    [0.4, '0.4'],
    [0.3, '0.3'],
    [1, '1'],
    [2, '2'],
    [1.5, '1.5'],
    [30, '30'],
  ])('%s s -> %s', (seconds, expected) => {
    expect(exposureText(seconds)).toBe(expected);
  });
});

describe('dmsToDegrees', () => {
  it.each<[unknown, unknown, 'S' | 'W', number | undefined]>([
    [[1, 30, 0], 'N', 'S', 1.5],
    [[1, 30, 0], 'S', 'S', -1.5],
    [[1, 30, 0], 'W', 'W', -1.5],
    [[1, 30, 0], undefined, 'W', 1.5],
    [[12.5], 'E', 'W', 12.5],
    [[], 'N', 'S', undefined],
    ['12', 'N', 'S', undefined],
    [[-1, 0, 0], 'N', 'S', undefined],
  ])('%j %s -> %s', (dms, ref, negative, expected) => {
    expect(dmsToDegrees(dms, ref, negative)).toBe(expected);
  });
});

describe('parseExif', () => {
  it('is null for missing, short or damaged bytes instead of throwing', () => {
    expect(parseExif(undefined)).toBeNull();
    expect(parseExif(Buffer.from('Exif'))).toBeNull();
    expect(parseExif(Buffer.from('Exif\0\0XX\x2a\0\0\0\0\0'))).toBeNull();
  });

  it('reads a little-endian TIFF structure with one Make tag', () => {
    // II, 42, IFD at 8: one entry (0x010f Make, ASCII, 4 bytes "Foo\0" inline), next IFD 0.
    const bytes = Buffer.from([
      0x49, 0x49, 0x2a, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0f, 0x01, 0x02, 0x00, 0x04, 0x00, 0x00,
      0x00, 0x46, 0x6f, 0x6f, 0x00, 0x00, 0x00, 0x00, 0x00,
    ]);
    expect(curateExif(parseExif(bytes), { exposeGps: false })).toEqual({ make: 'Foo' });
  });
});
