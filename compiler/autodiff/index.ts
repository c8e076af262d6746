export { differentiate } from './differentiate.ts';
export { vjpRules } from './vjp-rules.ts';
