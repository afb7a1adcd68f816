import type { Command } from 'commander';
import { usage, type CliRuntime } from '../context.ts';

const flags = (c: Command) => [...c.options.map((o) => o.long).filter((f): f is string => Boolean(f)), '--json', '--help'];

/** A bash completion script for the command tree as it is defined, so it never drifts from the commands. */
export function bashCompletion(program: Command): string {
  const cases: string[] = [];
  for (const c of program.commands) {
    if (c.commands.length > 0) {
      for (const sub of c.commands) cases.push(`    "${c.name()} ${sub.name()}") opts="${flags(sub).join(' ')}" ;;`);
      cases.push(`    "${c.name()} "*) opts="${c.commands.map((s) => s.name()).join(' ')}" ;;`);
    } else cases.push(`    "${c.name()} "*) opts="${flags(c).join(' ')}" ;;`);
  }
  return `# bash completion for wombat; load it with: eval "$(wombat completion bash)"
_wombat() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" opts
  if [ "$COMP_CWORD" -eq 1 ]; then
    opts="${program.commands.map((c) => c.name()).join(' ')} --json --verbose --help"
  else
    local key="\${COMP_WORDS[1]} "
    [ "$COMP_CWORD" -gt 2 ] && key="\${COMP_WORDS[1]} \${COMP_WORDS[2]}"
    case "$key" in
${cases.join('\n')}
      *) opts="" ;;
    esac
  fi
  COMPREPLY=( $(compgen -W "$opts" -- "$cur") )
}
complete -F _wombat wombat`;
}

export function registerCompletion(program: Command, rt: CliRuntime): void {
  program
    .command('completion <shell>')
    .description('print a shell completion script (bash): eval "$(wombat completion bash)"')
    .action((shell: string) => {
      if (shell !== 'bash') throw usage(`completion: only bash is supported, not "${shell}"`);
      rt.out(bashCompletion(program));
    });
}
