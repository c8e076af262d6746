// Runs the CLI in-process and captures what it prints: exit code, stdout and stderr as text.
import { main } from '../../cli/main.ts';
import type { Io } from '../../cli/report.ts';

export async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await main(argv, io);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}
