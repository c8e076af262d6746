#!/usr/bin/env node
// The `lomoc` command. Models are TypeScript files, so the CLI runs under tsx: it compiles .ts on
// import (lomoc's own sources and the user's model) with source maps, so errors point at the
// user's lines. Plain JS here because nothing has been registered yet when this file loads.
import { registerModelLoader } from './register.js';

registerModelLoader();
// `lomoc graph ... --print | head` closes stdout early: stop quietly, as other Unix tools do.
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
// After a GPU wait passed its deadline (LOMOC_GPU_TIMEOUT_MS), the driver's threads may still run
// a kernel that never ends: the process would never end on its own. The error is printed: exit.
const { anyDeviceHung } = await import('../runtime/webgpu/guard.ts');
if (anyDeviceHung()) process.exit(process.exitCode);
