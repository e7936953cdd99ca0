import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Command } from 'commander';
import { addTrainCommand, recipeFlagNames } from '../../src/cli/commands/train.js';
import { createTerminal } from '../../src/cli/terminal.js';
import { recipes } from '../../src/train/options.js';

function trainOptionNames(): string[] {
  const program = new Command();
  addTrainCommand(program, () => createTerminal());
  const train = program.commands.find((command) => command.name() === 'train');
  assert.ok(train, 'the train command is registered');
  return train.options.map((option) => option.attributeName());
}

test('every recipe field maps to a train flag', () => {
  const optionNames = trainOptionNames();
  for (const [recipeName, recipe] of Object.entries(recipes)) {
    for (const field of Object.keys(recipe)) {
      const flag = recipeFlagNames[field as keyof typeof recipeFlagNames];
      assert.ok(flag, `recipe ${recipeName} sets ${field}, which has no entry in recipeFlagNames`);
      assert.ok(optionNames.includes(flag), `recipe ${recipeName} sets ${field} through ${flag}, which is not a train option`);
    }
  }
});

test('seed recipe runs micro-batches of 8', () => {
  assert.equal(recipes.seed.microBatchSize, 8);
  assert.equal(recipes.seed.unfreeze, 'all');
});
