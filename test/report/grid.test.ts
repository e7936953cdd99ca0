import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseGridItems, drawSanityGrid, gridLayout, gridTileBox, isExactMatch, type GridTile } from '../../src/report/grid.js';
import type { RgbImage } from '../../src/image/decode.js';
import { decodePng, pixel, titleColors } from './pictures.js';

function solidImage(size: number, color: [number, number, number]): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let index = 0; index < size * size; index++) {
    data.set(color, index * 3);
  }
  return { width: size, height: size, data };
}

const tileColors: [number, number, number][] = [
  [40, 40, 200],
  [200, 200, 40],
  [90, 90, 90],
  [20, 160, 160],
  [160, 20, 160],
  [250, 140, 0],
  [10, 10, 10],
];

function tiles(): GridTile[] {
  return tileColors.map((color, index) => ({
    image: solidImage(224, color),
    file: `${index}.jpg`,
    trueLabels: index % 2 === 0 ? ['sea', 'sunset'] : ['trees'],
    // Even tiles are exact matches (in another order), odd tiles are not.
    predictedLabels: index % 2 === 0 ? ['sunset', 'sea'] : ['trees', 'mountains'],
  }));
}

test('grid has one tile per image', async () => {
  const layout = gridLayout(7, 3);
  const picture = await decodePng(await drawSanityGrid(tiles(), 3));
  assert.equal(layout.rows, 3);
  assert.equal(picture.width, layout.gap + 3 * (layout.tileSize + layout.gap));
  assert.equal(picture.height, layout.headerHeight + 3 * (layout.titleHeight + layout.tileSize + layout.gap));

  tileColors.forEach((color, index) => {
    const box = gridTileBox(layout, index);
    assert.deepEqual(pixel(picture, box.x + layout.tileSize / 2, box.imageY + layout.tileSize / 2), color, `tile ${index}`);
  });
  // Slots 8 and 9 of the last row stay empty.
  for (const index of [7, 8]) {
    const box = gridTileBox(layout, index);
    assert.deepEqual(pixel(picture, box.x + layout.tileSize / 2, box.imageY + layout.tileSize / 2), [255, 255, 255], `slot ${index}`);
  }
});

test('grid titles are green or red', async () => {
  const layout = gridLayout(7, 3);
  const picture = await decodePng(await drawSanityGrid(tiles(), 3));
  for (let index = 0; index < 7; index++) {
    const box = gridTileBox(layout, index);
    const colors = titleColors(picture, box.x, box.y, layout.tileSize, layout.titleHeight - 4);
    if (index % 2 === 0) {
      assert.ok(colors.green > 50, `tile ${index} (exact match) has ${colors.green} green title pixels`);
      assert.equal(colors.red, 0, `tile ${index} (exact match) has red title pixels`);
    } else {
      assert.ok(colors.red > 50, `tile ${index} (mismatch) has ${colors.red} red title pixels`);
      assert.equal(colors.green, 0, `tile ${index} (mismatch) has green title pixels`);
    }
  }
});

test('exact match ignores label order', () => {
  assert.equal(isExactMatch({ trueLabels: ['a', 'b'], predictedLabels: ['b', 'a'] }), true);
  assert.equal(isExactMatch({ trueLabels: [], predictedLabels: [] }), true);
  assert.equal(isExactMatch({ trueLabels: ['a'], predictedLabels: ['a', 'b'] }), false);
  assert.equal(isExactMatch({ trueLabels: ['a', 'b'], predictedLabels: ['a'] }), false);
  assert.equal(isExactMatch({ trueLabels: ['a'], predictedLabels: [] }), false);
});

test('grid choice follows the seed', () => {
  const items = Array.from({ length: 100 }, (_, index) => index);
  const first = chooseGridItems(items, 36, 7);
  assert.equal(first.length, 36);
  assert.equal(new Set(first).size, 36);
  assert.deepEqual(chooseGridItems(items, 36, 7), first);
  assert.notDeepEqual(chooseGridItems(items, 36, 8), first);
  assert.notDeepEqual(first, items.slice(0, 36));
  assert.deepEqual([...chooseGridItems(items.slice(0, 10), 36, 7)].sort((a, b) => a - b), items.slice(0, 10));
  assert.deepEqual(items, Array.from({ length: 100 }, (_, index) => index), 'the input list was changed');
});
