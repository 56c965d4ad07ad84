#!/usr/bin/env node
// Extracts, from GitHub's OpenAPI description as published in `@octokit/openapi`, the
// operations the reconciler calls (and the fake GitHub serves), with every `$ref` resolved,
// into one small JSON file. Used by refresh-openapi.sh; run from there.
//
// usage: node extract-openapi-subset.js PACKAGE_DIR OUTPUT_FILE
"use strict";
const fs = require("fs");
const path = require("path");

// Exactly the operations `reconciler::forge::github` uses, plus the App token exchange.
const OPERATIONS = {
  "/app/installations/{installation_id}/access_tokens": ["post"],
  "/repos/{owner}/{repo}/pulls": ["get"],
  "/repos/{owner}/{repo}/pulls/{pull_number}": ["get"],
  "/repos/{owner}/{repo}/issues": ["get", "post"],
  "/repos/{owner}/{repo}/issues/{issue_number}": ["patch"],
  "/repos/{owner}/{repo}/issues/{issue_number}/comments": ["get", "post"],
  "/repos/{owner}/{repo}/issues/comments/{comment_id}": ["patch", "delete"],
  "/repos/{owner}/{repo}/issues/{issue_number}/labels": ["get", "post"],
  "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}": ["delete"],
  "/repos/{owner}/{repo}/check-runs": ["post"],
  "/repos/{owner}/{repo}/statuses/{sha}": ["post"],
  "/repos/{owner}/{repo}/collaborators/{username}/permission": ["get"],
};

const [pkgDir, outFile] = process.argv.slice(2);
if (!pkgDir || !outFile) {
  console.error("usage: extract-openapi-subset.js PACKAGE_DIR OUTPUT_FILE");
  process.exit(2);
}
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
const doc = JSON.parse(
  fs.readFileSync(path.join(pkgDir, "generated", "api.github.com.json"), "utf8"),
);

function lookup(ref) {
  if (!ref.startsWith("#/")) throw new Error(`external $ref ${ref}`);
  return ref
    .slice(2)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((node, key) => {
      if (node === undefined || !(key in node)) throw new Error(`dangling $ref ${ref}`);
      return node[key];
    }, doc);
}

// Resolves every `$ref` (GitHub's description has no recursive schemas; a cycle is an error).
// Outside example values, drops prose (`description` strings, `externalDocs`) to keep the
// file small; examples are kept verbatim (their `description` fields are data).
function resolve(node, seen, inExample) {
  if (Array.isArray(node)) return node.map((n) => resolve(n, seen, inExample));
  if (node === null || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    if (seen.includes(node.$ref)) throw new Error(`recursive $ref ${node.$ref}`);
    return resolve(lookup(node.$ref), [...seen, node.$ref], inExample);
  }
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    if (!inExample && (key === "externalDocs" || key === "x-github")) continue;
    if (!inExample && key === "description" && typeof value === "string") continue;
    const example = inExample || key === "example" || key === "examples" || key === "value";
    out[key] = resolve(value, seen, example);
  }
  return out;
}

const paths = {};
for (const [p, methods] of Object.entries(OPERATIONS)) {
  const item = doc.paths[p];
  if (!item) throw new Error(`${p} is not in the description`);
  paths[p] = {};
  for (const m of methods) {
    const op = item[m];
    if (!op) throw new Error(`${m.toUpperCase()} ${p} is not in the description`);
    const responses = {};
    for (const [code, response] of Object.entries(op.responses)) {
      const r = resolve(response, [], false);
      // Only successful answers keep their bodies; the fake shapes errors itself.
      responses[code] = code.startsWith("2") ? r : { summary: String(code) };
    }
    paths[p][m] = {
      operationId: op.operationId,
      summary: op.summary,
      parameters: resolve(op.parameters || [], [], false),
      ...(op.requestBody ? { requestBody: resolve(op.requestBody, [], false) } : {}),
      responses,
    };
  }
}

const subset = {
  openapi: doc.openapi,
  info: {
    title: "GitHub REST API subset used by centossrv",
    version: doc.info.version,
    "x-source": `${pkg.name}@${pkg.version} generated/api.github.com.json`,
    "x-generated-by": "tests/forge-fake/refresh-openapi.sh",
  },
  paths,
};
// One line per operation: small, and a refresh's diff still shows which operations changed.
const lines = [];
for (const [p, ops] of Object.entries(paths)) {
  const inner = Object.entries(ops).map(([m, op]) => `  ${JSON.stringify(m)}: ${JSON.stringify(op)}`);
  lines.push(` ${JSON.stringify(p)}: {\n${inner.join(",\n")}\n }`);
}
const head = JSON.stringify({ openapi: subset.openapi, info: subset.info }, null, 1).slice(0, -2);
fs.writeFileSync(outFile, `${head},\n "paths": {\n${lines.join(",\n")}\n }\n}\n`);
console.log(`wrote ${outFile} from ${pkg.name}@${pkg.version}`);
