#!/usr/bin/env node
// Compiles every contracts/*.sol with the pinned solc-js (tools/package.json)
// and fixed settings, writing one artifact per deployable contract to
// contracts/artifacts/<Name>.json (or to the directory given with --out).
//
// Reproducible: source names are repository-relative ("contracts/X.sol"), the
// metadata hash is left out of the bytecode, and the JSON is written with a
// fixed key order. Any compiler warning is an error (exit 1), and so is a
// contract whose deployed code exceeds the EIP-170 limit (24576 bytes).
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const CONTRACTS_DIR = path.join(ROOT, 'contracts');
const EIP170_LIMIT = 24576;

// The settings every artifact is compiled with. evmVersion "cancun": supported
// by revm (embedded ledger), anvil and Besu; no newer opcodes are needed.
const SETTINGS = {
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: 'none' },
  outputSelection: {
    '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] },
  },
};

function parseArgs(argv) {
  let out = path.join(CONTRACTS_DIR, 'artifacts');
  let quiet = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && i + 1 < argv.length) {
      out = path.resolve(argv[++i]);
    } else if (argv[i] === '--quiet') {
      quiet = true;
    } else {
      console.error(`usage: compile.js [--out DIR] [--quiet] (unknown argument: ${argv[i]})`);
      process.exit(2);
    }
  }
  return { out, quiet };
}

function main() {
  const { out, quiet } = parseArgs(process.argv.slice(2));

  const files = fs
    .readdirSync(CONTRACTS_DIR)
    .filter((f) => f.endsWith('.sol'))
    .sort();
  if (files.length === 0) {
    console.error('compile.js: no contracts/*.sol found');
    process.exit(1);
  }
  const sources = {};
  for (const f of files) {
    sources[`contracts/${f}`] = { content: fs.readFileSync(path.join(CONTRACTS_DIR, f), 'utf8') };
  }

  const input = { language: 'Solidity', sources, settings: SETTINGS };
  // Every source is given up front: any other import is an error.
  const findImports = (p) => ({ error: `import not found: ${p} (only contracts/*.sol may be imported)` });
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));

  let failed = false;
  for (const e of output.errors || []) {
    if (e.severity === 'info') continue;
    failed = true;
    console.error(e.formattedMessage || e.message);
  }
  if (failed) {
    console.error('compile.js: compilation produced errors or warnings (warnings are errors here)');
    process.exit(1);
  }

  const version = solc.version();
  const artifacts = [];
  for (const source of Object.keys(output.contracts || {}).sort()) {
    for (const name of Object.keys(output.contracts[source]).sort()) {
      const c = output.contracts[source][name];
      const bytecode = c.evm.bytecode.object;
      if (!bytecode) continue; // interfaces and abstract contracts
      if (c.abi.length === 0) continue; // libraries of internal functions only (inlined where used)
      const deployed = c.evm.deployedBytecode.object;
      const size = deployed.length / 2;
      if (size > EIP170_LIMIT) {
        console.error(`compile.js: ${name}: deployed code is ${size} bytes, over the EIP-170 limit of ${EIP170_LIMIT}`);
        failed = true;
      }
      artifacts.push({
        file: `${name}.json`,
        size,
        json: {
          contractName: name,
          abi: c.abi,
          bytecode: `0x${bytecode}`,
          deployedBytecode: `0x${deployed}`,
          compiler: version,
          settings: {
            evmVersion: SETTINGS.evmVersion,
            optimizer: SETTINGS.optimizer,
            metadata: SETTINGS.metadata,
          },
        },
      });
    }
  }
  if (failed) process.exit(1);
  const names = new Set(artifacts.map((a) => a.file));
  if (names.size !== artifacts.length) {
    console.error('compile.js: two contracts share a name');
    process.exit(1);
  }

  fs.mkdirSync(out, { recursive: true });
  for (const f of fs.readdirSync(out)) {
    if (f.endsWith('.json') && !names.has(f)) fs.unlinkSync(path.join(out, f));
  }
  for (const a of artifacts) {
    fs.writeFileSync(path.join(out, a.file), `${JSON.stringify(a.json, null, 2)}\n`);
    if (!quiet) console.log(`${a.json.contractName}: ${a.size} bytes deployed (limit ${EIP170_LIMIT})`);
  }
  if (!quiet) console.log(`compiled ${files.length} source(s) with solc ${version} into ${path.relative(ROOT, out) || out}`);
}

main();
