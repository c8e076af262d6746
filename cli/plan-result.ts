// What `lomoc plan` computes for each optimizer, as data: plan.ts makes it, plan-table.ts prints it.
import type { Diagnostic } from '../compiler/diagnostics.ts';
import type { Config } from '../compiler/dsl/model.ts';
import type { OptimizerName } from '../compiler/passes/optimizer-step.ts';
import type { CompiledStep, StepConfig } from '../compiler/pipeline.ts';
import type { MemoryReport } from '../compiler/report/memory-report.ts';

export type StepFields = Omit<StepConfig, 'optimizer' | 'hyper' | 'preset' | 'sets' | 'plan' | 'verifyEach' | 'master'>;

export interface PlanRow {
  readonly optimizer: OptimizerName;
  readonly compiled: CompiledStep;
  readonly report: MemoryReport;
  /** Wall time of compileStep: trace to memory plan. */
  readonly planMs: number;
}

export interface PlanResult {
  readonly model: string;
  readonly file: string;
  readonly preset: string;
  readonly config: Config;
  readonly step: StepFields;
  readonly rows: readonly PlanRow[];
  readonly warnings: readonly Diagnostic[];
  /** The kernel target line; `differs` when the other target's scratch differs, so the plan depends on the target. */
  readonly targetNote: { readonly line: string; readonly differs: boolean };
}
