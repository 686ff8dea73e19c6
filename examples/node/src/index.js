const greeting = require("greeting");
console.log(greeting("multi-stage Node.js build"));
console.log("node " + process.version);
