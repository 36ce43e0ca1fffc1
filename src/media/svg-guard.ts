/**
 * What an SVG may not contain to be rasterised here. librsvg decodes `<image>` (and `<feImage>`)
 * sources at their full size without any pixel limit — a 270 KB document carrying an 8000 x 8000
 * PNG as a data: URL took 777 MB — and XInclude and entity declarations can pull in or multiply
 * content. Element and declaration names cannot be hidden behind character references, so a scan of
 * the text is enough to find them. Returns a reason a person understands, or undefined.
 */
export function svgRefusal(document: string): string | undefined {
  const found =
    /<(?:[A-Za-z_][\w.-]*:)?(image|feImage)[\s/>]/i.exec(document)?.[1] ??
    (/<(?:[A-Za-z_][\w.-]*:)?include[\s/>]/i.test(document) ? 'xi:include' : undefined) ??
    (/<!ENTITY/i.test(document) ? '<!ENTITY>' : undefined);
  if (found === undefined) return undefined;
  const what = found.startsWith('<') || found.includes(':') ? found : `<${found}>`;
  return `The SVG embeds or includes other content (${what}); assetpipe only rasterises self-contained vector SVGs. Export it without embedded images, or upload it as PNG.`;
}
