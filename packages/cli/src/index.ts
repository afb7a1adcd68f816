export { runCli, buildProgram, type CliRuntime } from './program.ts';
export { EXIT, EXIT_CODES_HELP } from './context.ts';
