#!/usr/bin/env node
// Manual smoke test of contracts/artifacts/*.json against a dev chain with
// unlocked accounts (anvil). Not part of CI: the Rust ledger tests are the
// real tests. Needs `ethers` v6 from a scratch directory, never from tools/:
//
//   mkdir -p /tmp/smoke && cd /tmp/smoke && npm install @foundry-rs/anvil@1.7.1 ethers@6
//   /tmp/smoke/node_modules/.bin/anvil --hardfork cancun --port 8545 &
//   NODE_PATH=/tmp/smoke/node_modules node tools/smoke-anvil.js [http://127.0.0.1:8545]
//
// Exits non-zero at the first failed check.
'use strict';

const path = require('path');
const { ethers } = require('ethers');

const RPC = process.argv[2] || process.env.LEDGERMQ_RPC || 'http://127.0.0.1:8545';
const ART = path.resolve(__dirname, '..', 'contracts', 'artifacts');

let checks = 0;
function ok(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
  checks++;
  console.log(`  ok  ${what}`);
}

async function reverts(promise, reason, what) {
  try {
    const tx = await promise;
    if (tx && tx.wait) await tx.wait();
  } catch (e) {
    const got = e.reason || e.shortMessage || e.message;
    ok(got.includes(reason), `${what} reverts: "${got}"`);
    return;
  }
  throw new Error(`check failed: ${what} did not revert`);
}

async function send(promise) {
  const tx = await promise;
  const receipt = await tx.wait();
  return receipt;
}

function events(contract, receipt, name) {
  return receipt.logs
    .filter((l) => l.address.toLowerCase() === contract.target.toLowerCase())
    .map((l) => contract.interface.parseLog(l))
    .filter((p) => p && p.name === name);
}

async function deploy(signer, name, ...args) {
  const a = require(path.join(ART, `${name}.json`));
  const f = new ethers.ContractFactory(a.abi, a.bytecode, signer);
  const c = await f.deploy(...args);
  const r = await c.deploymentTransaction().wait();
  console.log(`deployed ${name} at ${c.target} (gas ${r.gasUsed})`);
  return c;
}

async function main() {
  // cacheTimeout -1: ethers otherwise reuses an identical eth_estimateGas answer
  // for 250 ms, so a call retried right after a state change would see stale state.
  const provider = new ethers.JsonRpcProvider(RPC, undefined, { cacheTimeout: -1 });
  const accounts = await provider.listAccounts();
  const [supplier, manufacturer, distributor, retailer, customer, broker, outsider, supplier2, broker2] = accounts;
  const as = (c, s) => c.connect(s);

  // ------------------------------------------------------------ consortium
  const founders = ['supplier', 'manufacturer', 'distributor', 'retailer'];
  const consortium = await deploy(
    supplier,
    'Consortium',
    founders,
    ['Supplier Ltd', 'Manufacturer AG', 'Distributor BV', 'Retailer SA'],
    [[supplier.address], [manufacturer.address], [distributor.address], [retailer.address]],
  );
  const registry = await deploy(supplier, 'Registry', consortium.target);
  const audit = await deploy(supplier, 'Audit', consortium.target);

  ok((await consortium.orgCount()) === 4n, 'four founding organisations');
  ok((await consortium.orgIdAt(3)) === 'retailer', 'orgIdAt(3) is retailer');
  ok((await consortium.approvalsNeeded()) === 3n, 'a new organisation needs 3 of 4 approvals');

  let r = await send(as(consortium, supplier).propose('customer', 'Customer plc', [customer.address], 0));
  const [proposed] = events(consortium, r, 'OrganisationProposed');
  ok(proposed.args.orgId === 'customer' && proposed.args.proposerOrg === 'supplier', 'OrganisationProposed event');
  const pid = proposed.args.proposalId;
  await reverts(as(consortium, supplier).approve(pid), 'organisation supplier has already approved', 'second approval by supplier');
  await reverts(as(consortium, outsider).approve(pid), 'caller is not an admin of any organisation', 'approval by an outsider');
  await send(as(consortium, manufacturer).approve(pid));
  ok(!(await consortium.isOrg('customer')), 'not added after 2 of 4 approvals');
  r = await send(as(consortium, distributor).approve(pid));
  ok(events(consortium, r, 'ProposalExecuted').length === 1, 'executed at the 3rd approval');
  const [added] = events(consortium, r, 'OrganisationAdded');
  ok(added.args.orgId === 'customer' && added.args.admins[0] === customer.address, 'OrganisationAdded event');
  ok(await consortium.isOrg('customer'), 'customer is a member');
  ok((await consortium.getProposal(pid)).status === 2n, 'proposal status Executed');
  await reverts(as(consortium, retailer).approve(pid), 'proposal is not pending', 'approving an executed proposal');
  ok((await consortium.approvalsNeeded()) === 3n, '5 organisations need 3 approvals');

  // cancel and expiry
  r = await send(as(consortium, retailer).propose('auditor', 'Auditor', [outsider.address], 3600));
  const pid2 = events(consortium, r, 'OrganisationProposed')[0].args.proposalId;
  await reverts(as(consortium, supplier).cancel(pid2), 'only the proposer may cancel', 'cancel by a non-proposer');
  await send(as(consortium, retailer).cancel(pid2));
  ok((await consortium.getProposal(pid2)).status === 3n, 'proposal status Cancelled');
  r = await send(as(consortium, retailer).propose('auditor', 'Auditor', [outsider.address], 3600));
  const pid3 = events(consortium, r, 'OrganisationProposed')[0].args.proposalId;
  await provider.send('evm_increaseTime', [3601]);
  await provider.send('evm_mine', []);
  ok((await consortium.getProposal(pid3)).status === 4n, 'proposal status Expired');
  await reverts(as(consortium, supplier).approve(pid3), 'proposal has expired', 'approving an expired proposal');

  // admins
  await reverts(as(consortium, supplier).removeAdmin('supplier', supplier.address), 'cannot remove the last admin', 'removing the last admin');
  await reverts(as(consortium, manufacturer).addAdmin('supplier', supplier2.address), 'caller is not an admin of organisation supplier', 'addAdmin by another org');
  await send(as(consortium, supplier).addAdmin('supplier', supplier2.address));
  ok(await consortium.isAdmin('supplier', supplier2.address), 'second supplier admin');
  ok((await consortium.orgOfAdmin(supplier2.address)) === 'supplier', 'orgOfAdmin');

  // brokers
  const sk = ethers.id('broker-ed25519');
  const ak = ethers.id('broker-x25519');
  await reverts(as(consortium, manufacturer).addBroker('supplier', broker.address, sk, ak), 'caller is not an admin of organisation supplier', 'addBroker by another org');
  r = await send(as(consortium, supplier).addBroker('supplier', broker.address, sk, ak));
  const [badd] = events(consortium, r, 'BrokerAdded');
  ok(badd.args.orgId === 'supplier' && badd.args.signingKey === sk && badd.args.agreementKey === ak, 'BrokerAdded event');
  ok(await consortium.isBroker(broker.address), 'broker registered');
  await send(as(consortium, manufacturer).addBroker('manufacturer', broker2.address, sk, ak));
  r = await send(as(consortium, manufacturer).replaceBroker(broker2.address, broker2.address, ethers.id('k2'), ak));
  ok(events(consortium, r, 'BrokerRemoved').length === 1 && events(consortium, r, 'BrokerAdded').length === 1, 'replaceBroker = removed + added');
  ok((await consortium.getBroker(broker2.address)).signingKey === ethers.id('k2'), 'rotated broker key');
  ok((await consortium.brokerCount()) === 2n, 'two brokers');
  const org = await consortium.getOrg('supplier');
  ok(org.admins.length === 2 && org.brokerAccounts[0] === broker.address, 'getOrg lists admins and brokers');

  // -------------------------------------------------------------- registry
  const dsk = ethers.id('dev-ed25519');
  const dak = ethers.id('dev-x25519');
  await reverts(as(registry, manufacturer).registerDevice('supplier', 'sensor-1', dsk, dak), 'caller is not an admin of organisation supplier', 'registration by a non-admin');
  r = await send(as(registry, supplier).registerDevice('supplier', 'sensor-1', dsk, dak));
  console.log(`    registerDevice gas ${r.gasUsed}`);
  const [reg] = events(registry, r, 'DeviceRegistered');
  ok(reg.args.deviceId === 'sensor-1' && reg.args.org === 'supplier' && reg.args.signingKey === dsk && reg.args.deviceKey === ethers.id('sensor-1'), 'DeviceRegistered event');
  await reverts(as(registry, supplier2).registerDevice('supplier', 'sensor-1', dsk, dak), 'device sensor-1 is already registered', 'duplicate device id');
  await reverts(as(registry, supplier).registerDevice('supplier', 'bad id', dsk, dak), 'printable ASCII', 'device id with a space');

  r = await send(as(registry, supplier).grantRight('sensor-1', 'factory/line1/temp', true, true));
  console.log(`    grantRight (creating the topic) gas ${r.gasUsed}`);
  const [tc] = events(registry, r, 'TopicCreated');
  ok(tc && tc.args.topic === 'factory/line1/temp' && tc.args.org === 'supplier' && tc.args.subscribeOpen && !tc.args.publishOpen, 'grantRight created the topic');
  const [rg] = events(registry, r, 'RightGranted');
  ok(rg.args.deviceId === 'sensor-1' && rg.args.publish && rg.args.subscribe, 'RightGranted event');
  await reverts(as(registry, manufacturer).grantRight('sensor-1', 'factory/x', true, false), 'caller is not an admin of organisation supplier', 'grantRight by another org');
  await reverts(as(registry, supplier).grantRight('sensor-1', 'factory/#/x', true, false), "'#' must be the last", 'invalid filter');
  await reverts(as(registry, supplier).grantRight('sensor-1', '$SYS/x', true, false), 'reserved', '$ topic');
  ok((await registry.rightCount('sensor-1')) === 1n, 'rightCount');
  const ra = await registry.rightAt('sensor-1', 0);
  ok(ra.topic === 'factory/line1/temp' && ra.canPublish && ra.canSubscribe, 'rightAt');

  // cross-organisation rule
  await send(as(registry, manufacturer).registerDevice('manufacturer', 'robot-1', dsk, dak));
  await send(as(registry, manufacturer).grantRight('robot-1', 'factory/line1/temp', false, true));
  ok((await registry.getRight('robot-1', 'factory/line1/temp')).canSubscribe, 'cross-org subscribe granted');
  await reverts(as(registry, manufacturer).grantRight('robot-1', 'factory/line1/temp', true, true), 'owned by organisation supplier and not open for publish', 'cross-org publish');
  r = await send(as(registry, supplier).setTopicFlags('factory/line1/temp', true, true, true));
  ok(events(registry, r, 'TopicUpdated')[0].args.publishOpen, 'TopicUpdated event');
  await send(as(registry, manufacturer).grantRight('robot-1', 'factory/line1/temp', true, true));
  ok((await registry.getRight('robot-1', 'factory/line1/temp')).canPublish, 'cross-org publish once open');
  await reverts(as(registry, retailer).revokeRight('robot-1', 'factory/line1/temp'), 'caller is not an admin of organisation manufacturer or supplier', 'revokeRight by a third org');
  r = await send(as(registry, supplier).revokeRight('robot-1', 'factory/line1/temp'));
  ok(events(registry, r, 'RightRevoked').length === 1, 'topic owner revoked a cross-org right');
  ok((await registry.rightCount('robot-1')) === 0n, 'no rights left');

  // envelopes
  const env = ethers.hexlify(ethers.randomBytes(80));
  await reverts(as(registry, supplier).setOtpEnvelope('sensor-1', outsider.address, env), 'not a registered broker', 'envelope for a non-broker');
  await reverts(as(registry, manufacturer).setOtpEnvelope('sensor-1', broker.address, env), 'caller is not an admin of organisation supplier', 'envelope by another org');
  r = await send(as(registry, supplier).setOtpEnvelope('sensor-1', broker.address, env));
  ok(events(registry, r, 'OtpEnvelopeSet')[0].args.envelope === env, 'OtpEnvelopeSet event');
  ok((await registry.otpEnvelope('sensor-1', broker.address)) === env, 'otpEnvelope');
  ok((await registry.otpEnvelopeBrokers('sensor-1')).length === 1, 'otpEnvelopeBrokers');

  // key epochs
  await send(as(registry, supplier).commitKeyEpoch('factory/line1/temp', 1, ethers.id('epoch1')));
  await reverts(as(registry, supplier).commitKeyEpoch('factory/line1/temp', 1, ethers.id('again')), 'greater than the latest', 'non-increasing epoch');
  await reverts(as(registry, manufacturer).commitKeyEpoch('factory/line1/temp', 2, ethers.id('e2')), 'caller is not an admin of organisation supplier', 'epoch by another org');
  await send(as(registry, supplier).commitKeyEpoch('factory/line1/temp', 5, ethers.id('epoch5')));
  const le = await registry.latestKeyEpoch('factory/line1/temp');
  ok(le.epoch === 5n && le.commitment === ethers.id('epoch5'), 'latestKeyEpoch');

  // blacklist
  const now = BigInt((await provider.getBlock('latest')).timestamp);
  const evidence = ethers.id('evidence record');
  await reverts(as(registry, outsider).blacklistDevice('sensor-1', now + 600n, 2, evidence), 'caller is neither a broker node nor an admin of organisation supplier', 'blacklist by an outsider');
  await reverts(as(registry, broker).blacklistDevice('sensor-1', now + 600n, 2, ethers.ZeroHash), 'must give the digest of its evidence', 'blacklist by a broker without evidence');
  r = await send(as(registry, broker).blacklistDevice('sensor-1', now + 600n, 2, evidence));
  const [bl] = events(registry, r, 'Blacklisted');
  ok(bl.args.deviceId === 'sensor-1' && bl.args.until === now + 600n && bl.args.reason === 2n && bl.args.evidence === evidence && bl.args.by === broker.address, 'Blacklisted event (by a broker node)');
  ok(await registry.isBlacklisted('sensor-1'), 'isBlacklisted');
  ok((await registry.getBlacklist('sensor-1')).evidence === evidence, 'getBlacklist evidence');
  await reverts(as(registry, broker2).blacklistDevice('sensor-1', now + 60n, 2, evidence), 'may not shorten', 'broker shortening a ban');
  await reverts(as(registry, broker).liftBlacklist('sensor-1'), 'caller is not an admin of organisation supplier', 'lift by a broker');
  await send(as(registry, supplier2).liftBlacklist('sensor-1'));
  ok(!(await registry.isBlacklisted('sensor-1')), 'lifted by an admin');

  // revocation
  r = await send(as(registry, supplier).revokeDevice('sensor-1'));
  ok(events(registry, r, 'DeviceRevoked')[0].args.org === 'supplier', 'DeviceRevoked event');
  ok((await registry.getDevice('sensor-1')).status === 2n, 'status Revoked');
  await reverts(as(registry, supplier).grantRight('sensor-1', 'factory/y', true, false), 'device sensor-1 is revoked', 'grant to a revoked device');
  ok((await registry.deviceCount()) === 2n && (await registry.deviceIdAt(1)) === 'robot-1', 'device listing');
  ok((await registry.topicCount()) === 1n && (await registry.topicAt(0)) === 'factory/line1/temp', 'topic listing');

  // ----------------------------------------------------------------- audit
  const root = ethers.id('root-1');
  r = await send(as(audit, broker).anchor(root, 100, 1, 100));
  console.log(`    anchor gas ${r.gasUsed}`);
  const [an] = events(audit, r, 'Anchored');
  ok(an.args.root === root && an.args.leafCount === 100n && an.args.broker === broker.address, 'Anchored event');
  await reverts(as(audit, outsider).anchor(ethers.id('root-2'), 1, 101, 101), 'caller is not a registered broker node', 'anchor by a non-broker');
  await reverts(as(audit, supplier).anchor(ethers.id('root-2'), 1, 101, 101), 'caller is not a registered broker node', 'anchor by an admin');
  await reverts(as(audit, broker).anchor(root, 100, 1, 100), 'root already anchored', 'anchoring a root twice');
  ok((await audit.anchorCount()) === 1n, 'anchorCount');
  const ga = await audit.getAnchor(0);
  ok(ga.root === root && ga.firstSeq === 1n && ga.lastSeq === 100n, 'getAnchor');
  const fa = await audit.findAnchor(root);
  ok(fa.found && fa.index === 0n, 'findAnchor');
  r = await send(as(audit, broker).record(3, 'sensor-1', 'factory/line1/temp', Number(now), ethers.id('details')));
  ok(events(audit, r, 'AuditRecorded')[0].args.subject === 'sensor-1', 'AuditRecorded event');
  r = await send(as(audit, broker2).recordBatch([
    { kind: 1, subject: 'robot-1', topic: '', time: Number(now), digest: ethers.id('a') },
    { kind: 2, subject: 'robot-1', topic: 'x', time: Number(now), digest: ethers.id('b') },
  ]));
  ok(events(audit, r, 'AuditRecorded').length === 2 && (await audit.recordCount()) === 3n, 'recordBatch');
  await reverts(as(audit, outsider).record(1, 'x', '', 0, ethers.ZeroHash), 'caller is not a registered broker node', 'record by a non-broker');

  console.log(`${checks} passed, 0 failed`);
}

main().catch((e) => {
  console.error(e.message || e);
  process.exit(1);
});
