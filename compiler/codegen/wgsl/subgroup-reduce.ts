// Workgroup reductions through WGSL subgroup operations (the `subgroups` feature): each subgroup
// combines its lanes with subgroupAdd / subgroupMax, its lane 0 writes the result into a
// workgroup slot numbered by the subgroup_id built-in, and after one barrier every thread
// combines the num_subgroups slots in slot order. Nothing assumes a subgroup size or which
// invocations share a subgroup: WebGPU guarantees only sizes 4..128, adapters differ (lavapipe
// reports 8, NVIDIA 32, AMD 32 or 64) and a bundle runs on adapters its compiler never saw. So
// the slots number ceil(WG / 4), enough for the smallest size; a subgroup wider than the
// workgroup leaves one slot. Requires: callers call wgSum/wgMax in uniform control flow (they
// hold barriers), as the shared-memory versions (row-kernel.ts) already require.
// Ensures: every thread gets the workgroup's sum (max) of its arguments; a NaN anywhere gives NaN.
// On lavapipe 32-thread rows got 1.3-2x faster (layerNorm [1024, 128] 9.8 -> 6.4 ms); rows of 256
// threads were mixed (bench/subgroups.ts has the numbers).

/**
 * The directives a kernel using subgroup operations starts with (before any declaration): the
 * subgroup_id and num_subgroups built-ins are a WGSL language feature of their own (Chrome 144+,
 * Dawn), which the runtime checks beside the device feature (runtime/webgpu/device.ts).
 */
export const enableSubgroups = 'enable subgroups;\nrequires subgroup_id;\n';

/** WebGPU's least subgroupMinSize: the slots must hold a subgroup each at this size. */
const minSubgroupSize = 4;

/** Built-ins the entry point adds to its parameters (after entryArgs). */
export const subgroupArgs =
  ', @builtin(subgroup_invocation_id) sgLane: u32, @builtin(subgroup_id) sgId: u32, @builtin(num_subgroups) sgCount: u32';

/** The entry point's first statement: the built-ins where the reduction functions can read them. */
export const subgroupInit = 'sg = vec3u(sgLane, sgId, sgCount);';

/**
 * wgSum(v, t) and wgMax(v, t) for a workgroup of `wg` invocations (t is unused: the subgroup
 * built-ins say who is who), the same signatures as the shared-memory versions. A subgroup's max
 * is NaN when any lane's value is (subgroupMax's NaN behaviour is the platform's), like maxNan.
 */
export function subgroupReductions(wg: number): string {
  const slots = Math.max(1, Math.ceil(wg / minSubgroupSize));
  const fn = (name: string, sub: string, combine: (a: string, b: string) => string) => `fn ${name}(v: f32, t: u32) -> f32 {
  ${sub}
  if (sg.x == 0u) { sgPart[sg.y] = s; }
  workgroupBarrier();
  var r = sgPart[0];
  for (var k = 1u; k < sg.z; k++) { r = ${combine('r', 'sgPart[k]')}; }
  workgroupBarrier();
  return r;
}`;
  return `var<workgroup> sgPart: array<f32, ${slots}>;
var<private> sg: vec3u; // (lane in the subgroup, subgroup in the workgroup, subgroups)
${fn('wgSum', 'let s = subgroupAdd(v);', (a, b) => `${a} + ${b}`)}
${fn('wgMax', 'let s = select(subgroupMax(v), nanF32(), subgroupAny(isNan(v)));', (a, b) => `select(${a}, ${b}, ${b} > ${a} || isNan(${b}))`)}`;
}
