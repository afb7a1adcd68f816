import { AppError } from '@wombat/core/platform';

/**
 * What an engine is doing, as one value:
 * - `idle`: created, not started;
 * - `starting`: registering its heartbeat row and seeding the built-in schedules;
 * - `running`: following schedules, no publication pass in flight;
 * - `publishing`: a pass in flight;
 * - `publishing-again`: a pass in flight and another wanted as soon as it ends (a
 *   timer fired meanwhile, or the pass left a backlog for the next one);
 * - `stopping`, `stopped`.
 *
 * A pass in flight when the engine stops ends in `stopping`: it starts nothing after it.
 */
export type EngineMode = 'idle' | 'starting' | 'running' | 'publishing' | 'publishing-again' | 'stopping' | 'stopped';

const NEXT: { readonly [M in EngineMode]: readonly EngineMode[] } = {
  idle: ['starting', 'stopping'],
  starting: ['running', 'stopping'],
  running: ['publishing', 'stopping'],
  publishing: ['running', 'publishing-again', 'stopping'],
  // The next pass starts from `running`, on a fresh tick, so that I/O gets a turn in between.
  'publishing-again': ['running', 'stopping'],
  stopping: ['stopped'],
  stopped: [],
};

export interface EngineModeMachine {
  readonly mode: EngineMode;
  /** Moves to `next`; a transition not in the table is a bug in the engine and throws. */
  setMode(next: EngineMode): void;
  /** Started and not stopping: timers, notifications and passes may act. */
  following(): boolean;
}

export function createEngineMode(): EngineModeMachine {
  let mode: EngineMode = 'idle';
  return {
    get mode() {
      return mode;
    },
    setMode(next) {
      if (!NEXT[mode].includes(next)) throw new AppError('illegal_engine_transition', `the engine cannot go from ${mode} to ${next}`, { details: { from: mode, to: next } });
      mode = next;
    },
    following: () => mode === 'running' || mode === 'publishing' || mode === 'publishing-again',
  };
}
