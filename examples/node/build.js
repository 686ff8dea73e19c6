// "Compiles" src/ into dist/: what a bundler or tsc would do in a real project.
const fs = require("fs");
fs.mkdirSync("dist", { recursive: true });
const src = fs.readFileSync("src/index.js", "utf8");
fs.writeFileSync("dist/index.js", "// built by npm run build\n" + src);
