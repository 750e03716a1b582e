// Run MicroPython-side tests of umqtt_paho inside the real MicroPython VM (the npm
// package @micropython/micropython-webassembly-pyscript, 32-bit, under Node.js), loading
// the .mpy files that tools/build.py produced - never the .py sources.
//
//   node tests/vm/run.mjs --vm .../micropython.mjs --lib BUILD/wasm \
//       --file tests/test_packet.py --module test_packet \
//       [--test NAME ...] [--list] [--heapsize BYTES]
//
// --lib DIR    the folder holding the built umqtt_paho/ tree; only its .mpy files are
//              copied into the VM (at /lib/umqtt_paho), and a .py there is an error.
// --file F     a MicroPython-side test module or helper, copied to /tests (repeatable);
//              tests/vm/vmrunner.py (beside this script) is always copied too.
// --module M   the module whose test_* / measure_* functions run (default: all of them,
//              sorted by name; --test NAME, repeatable, to choose and order them).
// --list       stop after the {"event": "list"} line.
//
// Output on stdout, one JSON object per line:
//   {"event": "setup", "ok": bool, "modules": {name: __file__}, "non_mpy_files": [...]}
//   {"event": "import", "ok": bool, "traceback": text}
//   {"event": "list", "tests": [...]}         (what the VM found in the module)
//   {"event": "begin", "test": name}          (so a hang can be attributed)
//   {"test": name, "ok": bool, "traceback": text, "stdout": text, "ms": n [, "measure": {...}]}
//   {"event": "end", "passed": n, "failed": n}
// Each test runs in its own runPython() call and catches its exception in Python; its
// traceback comes from sys.print_exception. A measure_* function runs in two runPython()
// calls (setup + warm-up, then the measured loop) so that gc.collect() takes effect in
// between (see vmrunner.py). Exit status: 0 all passed, 1 a test failed, 2 usage,
// 3 setup failed (the VM did not load umqtt_paho from .mpy files).

import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function usage(msg) {
  process.stderr.write("run.mjs: " + msg + "\n");
  process.exit(2);
}

const { values: opt } = parseArgs({
  options: {
    vm: { type: "string" },
    lib: { type: "string" },
    file: { type: "string", multiple: true, default: [] },
    module: { type: "string" },
    test: { type: "string", multiple: true, default: [] },
    list: { type: "boolean", default: false },
    heapsize: { type: "string", default: String(2 * 1024 * 1024) },
  },
});
if (!opt.vm) usage("--vm PATH/micropython.mjs is required");
if (!opt.lib) usage("--lib DIR (holding umqtt_paho/) is required");
if (!opt.module) usage("--module NAME is required");

const { loadMicroPython } = await import(pathToFileURL(path.resolve(opt.vm)).href);

// The VM's stdout/stderr go into a buffer that is attached to each test's result.
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

// ---- files into the VM ----------------------------------------------------------------

function copyTree(src, dst) {
  // Only .mpy files: the VM must run what build.py compiled.
  mp.FS.mkdir(dst);
  for (const entry of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, entry.name);
    const d = dst + "/" + entry.name;
    if (entry.isDirectory()) {
      copyTree(s, d);
    } else if (entry.name.endsWith(".mpy")) {
      mp.FS.writeFile(d, fs.readFileSync(s));
    } else if (entry.name.endsWith(".py")) {
      usage(s + ": a .py source in the build tree; the VM must load .mpy files only");
    }
  }
}

const libSrc = path.join(path.resolve(opt.lib), "umqtt_paho");
if (!fs.existsSync(libSrc)) usage(libSrc + " does not exist (run tools/build.py --board wasm)");
mp.FS.mkdir("/lib");
copyTree(libSrc, "/lib/umqtt_paho");

mp.FS.mkdir("/tests");
for (const f of [path.join(HERE, "vmrunner.py"), ...opt.file]) {
  const base = path.basename(f);
  if (!base.endsWith(".py")) usage(f + ": test files must be .py");
  mp.FS.writeFile("/tests/" + base, fs.readFileSync(f));
}

// ---- running --------------------------------------------------------------------------

function py(call) {
  // One outermost runPython: its pending gc.collect() runs when it returns.
  captured = "";
  try {
    mp.runPython("_vm_r = " + call);
  } catch (e) {
    // vmrunner catches everything; this is a crash of the runner itself.
    return { ok: false, traceback: String(e && e.message ? e.message : e), stdout: captured };
  }
  const r = JSON.parse(mp.globals.get("_vm_r"));
  r.stdout = captured;
  return r;
}

const lit = (s) => JSON.stringify(s); // a JSON string is a Python string literal too

mp.runPython("import sys\nsys.path[:] = ['/lib', '/tests']\nimport vmrunner");

const setup = py("vmrunner.check_mpy()");
setup.event = "setup";
emit(setup);
if (!setup.ok) process.exit(3);

const imp = py("vmrunner.import_module(" + lit(opt.module) + ")");
imp.event = "import";
emit(imp);
if (!imp.ok) process.exit(1);

// What the VM itself finds in the module (test_* and measure_*, sorted by name).
const found = py("vmrunner.list_tests(" + lit(opt.module) + ")").names;
emit({ event: "list", tests: found });
if (opt.list) process.exit(0);
const names = opt.test.length ? opt.test : found;

let passed = 0;
let failed = 0;
for (const name of names) {
  emit({ event: "begin", test: name });
  const t0 = performance.now();
  let r;
  if (name.startsWith("measure_")) {
    r = py("vmrunner.measure_setup(" + lit(opt.module) + ", " + lit(name) + ")");
    if (r.ok) {
      const out = r.stdout;
      r = py("vmrunner.measure_run(" + lit(name) + ")");
      r.stdout = out + r.stdout;
    }
  } else {
    r = py("vmrunner.run_test(" + lit(opt.module) + ", " + lit(name) + ")");
  }
  r.test = name;
  r.ms = Math.round(performance.now() - t0);
  if (r.ok) passed++;
  else failed++;
  emit(r);
}
emit({ event: "end", passed, failed });
process.exit(failed ? 1 : 0);
