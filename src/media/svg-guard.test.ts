import { describe, expect, it } from 'vitest';
import { svgRefusal } from './svg-guard.js';

describe('svgRefusal', () => {
  it.each([
    '<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>',
    '<svg><text>an image of a cat</text><path d="M0 0"/></svg>',
    '<svg><imageless/></svg>',
  ])('lets a self-contained document through: %s', (svg) => {
    expect(svgRefusal(svg)).toBeUndefined();
  });

  it.each([
    ['<svg><image href="data:image/png;base64,AAAA"/></svg>', /<image>/],
    ['<svg><svg:image xlink:href="x.png" /></svg>', /<image>/],
    ['<svg><IMAGE\nhref="x"/></svg>', /<IMAGE>/],
    ['<svg><filter><feImage href="#a"/></filter></svg>', /<feImage>/],
    ['<svg><xi:include href="other.svg"/></svg>', /xi:include/],
    ['<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>', /<!ENTITY>/],
  ])('refuses %s', (svg, reason) => {
    expect(svgRefusal(svg)).toMatch(reason);
  });
});
