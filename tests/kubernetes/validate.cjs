// validate.cjs - check Kubernetes objects against the API's JSON schema, with npm's
// kubernetes-models (its validate() runs the OpenAPI schema of the object's kind through ajv).
// Input: a file named as the argument (else stdin) holding a JSON array of objects (kubernetes.test.sh converts the rendered YAML).
// Prints one line per object; exits 1 if any is invalid or of a kind the package lacks.
// NODE_PATH must reach the package: npm install --prefix DIR kubernetes-models
"use strict";

const objs = JSON.parse(require("fs").readFileSync(process.argv[2] || 0, "utf8"));
let bad = 0;

for (const o of objs) {
	const name = `${o.kind} ${o.metadata && o.metadata.name}`;
	let Model;

	try {
		Model = require(`kubernetes-models/${o.apiVersion}/${o.kind}`)[o.kind];
	} catch (e) {
		console.log(`FAIL ${name}: no schema for ${o.apiVersion} ${o.kind}`);
		bad++;
		continue;
	}
	try {
		new Model(o).validate();
		console.log(`ok   ${name} (${o.apiVersion})`);
	} catch (e) {
		console.log(`FAIL ${name}: ${e.message}`);
		bad++;
	}
}
process.exit(bad ? 1 : 0);
