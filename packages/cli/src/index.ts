export { runCli, buildProgram } from './program.ts';
export type { CliRuntime } from './context.ts';
export { EXIT, EXIT_CODES_HELP } from './context.ts';
