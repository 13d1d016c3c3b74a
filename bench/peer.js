// The peer of the per-call benchmark: the same sequential accounts calls made
// with the Node client qiwi-sdk (pinned in bench/package.json).
//
//   node bench/peer.js BASE_URL TOKEN WALLET WARMUP N
//
// qiwi-sdk hard-codes https://edge.qiwi.com/ in Wallet.httpClientFactory, but
// that factory returns an ordinary SimpleJsonHttp whose client options are
// public (the SDK's own tests set them the same way), so the base URL is
// pointed at the fake without patching the package. The fake's test CA comes
// from NODE_EXTRA_CA_CERTS. A keep-alive agent is set explicitly so that the
// SDK reuses its connection, as our client does.
//
// Prints "<wall seconds for the N timed calls> <calls per second>".
"use strict";

const https = require("https");
const { Wallet } = require("qiwi-sdk");

async function main() {
  const [baseURL, token, wallet, warmupText, nText] = process.argv.slice(2);
  const warmup = Number(warmupText);
  const n = Number(nText);
  if (!baseURL || !token || !wallet || !(n > 0)) {
    console.error("usage: node peer.js BASE_URL TOKEN WALLET WARMUP N");
    process.exit(2);
  }
  const http = Wallet.httpClientFactory(token);
  http.client.options.baseURL = baseURL.replace(/\/*$/, "/");
  http.client.options.agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  const client = new Wallet({ token, walletId: wallet, http });

  for (let i = 0; i < warmup; i++) await client.fundingSources.getAccounts();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const accounts = await client.fundingSources.getAccounts();
    if (!Array.isArray(accounts)) throw new Error("unexpected answer");
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`${seconds.toFixed(6)} ${(n / seconds).toFixed(1)}`);
  client.agent.destroy();
}

main().catch((err) => {
  console.error(`peer.js: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
