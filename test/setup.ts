// fast-check's runs are random on a developer's machine (more cases seen over time) and fixed in
// CI (CI=true), so a landing run cannot fail on a case nobody has seen; FC_SEED=n replays a seed.
import fc from 'fast-check';

const seed = process.env.FC_SEED ?? (process.env.CI ? '20261126' : undefined);
if (seed !== undefined) fc.configureGlobal({ seed: Number(seed) });
