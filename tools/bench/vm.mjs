// Memory figures of one MQTT client in the real MicroPython VM (the npm package
// @micropython/micropython-webassembly-pyscript, 32-bit, under Node.js). Run by
// tools/bench.py, once per client, each in a fresh VM:
//
//   node tools/bench/vm.mjs --vm .../micropython.mjs --lib DIR --client NAME
//
// --lib DIR   a folder of .mpy files (only .mpy files are copied), laid out as they go
//             into a board's /lib: umqtt_paho/..., umqtt/simple.mpy, adafruit_minimqtt/...
//             (repeatable: the folders are merged into /lib)
// --client    umqtt_paho | umqtt.simple | MiniMQTT (see tools/bench/vm_bench.py)
//
// tools/bench/vm_bench.py (beside this script) is copied to /bench and imported first.
// The measurement steps then run one runPython() each, because gc.collect() only takes
// effect when the outermost runPython() returns (same technique as tests/vm/run.mjs).
// Output on stdout: one JSON line, vm_bench.report().

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

const { values: opt } = parseArgs({
  options: {
    vm: { type: "string" },
    lib: { type: "string", multiple: true, default: [] },
    client: { type: "string" },
    heapsize: { type: "string", default: String(2 * 1024 * 1024) },
  },
});
for (const k of ["vm", "lib", "client"]) {
  if (!opt[k] || opt[k].length === 0) {
    process.stderr.write("vm.mjs: --" + k + " is required\n");
    process.exit(2);
  }
}

const { loadMicroPython } = await import(pathToFileURL(path.resolve(opt.vm)).href);
let captured = "";
const decoder = new TextDecoder();
const sink = (data) => {
  captured += typeof data === "string" ? data + "\n" : decoder.decode(data);
};
const mp = await loadMicroPython({
  heapsize: parseInt(opt.heapsize, 10),
  stdout: sink,
  stderr: sink,
  linebuffer: false,
});

function copyTree(src, dst) {
  if (!mp.FS.analyzePath(dst).exists) mp.FS.mkdir(dst);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = dst + "/" + entry.name;
    if (entry.isDirectory()) copyTree(s, d);
    else if (entry.name.endsWith(".mpy")) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
for (const lib of opt.lib) copyTree(path.resolve(lib), "/lib");
mp.FS.mkdir("/bench");
mp.FS.writeFile("/bench/vm_bench.py", fs.readFileSync(path.join(HERE, "vm_bench.py")));

const lit = JSON.stringify; // a JSON string is a Python string literal too
try {
  mp.runPython(
    "import sys\nsys.path[:] = ['/lib', '/bench']\nimport vm_bench as _b\n" +
      "_n = _b.init(" + lit(opt.client) + ")\n_r = None",
  );
  const n = mp.globals.get("_n");
  // step(10) .. step(10 + n - 1): code strings of the same length
  for (let i = 10; i < 10 + n; i++) mp.runPython("_b.step(" + i + ")");
  mp.runPython("_r = _b.report()");
  const r = JSON.parse(mp.globals.get("_r"));
  r.vm_output = captured;
  process.stdout.write(JSON.stringify(r) + "\n");
} catch (e) {
  process.stdout.write(
    JSON.stringify({
      client: opt.client,
      ok: false,
      error: String(e && e.message ? e.message : e),
      vm_output: captured,
    }) + "\n",
  );
  process.exit(1);
}
