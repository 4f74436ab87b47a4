import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { Readable, Writable } from 'node:stream';
import type { Logger } from '../core/logger.js';
import {
  spawnHelperPath,
  type FunctionProcess,
  type ProcessExit,
  type ProcessLauncher,
} from './spawner.js';

/**
 * The Node side of fnbus-spawner (watchdog/native/fnbus-spawner.c, whose header documents the
 * protocol): a small C process that starts function processes with vfork+exec, so the watchdog
 * never forks its own heap per request. Node's child_process forks the whole process and
 * blocks the event loop until the child has exec'd: measured, half the calls per second.
 */

const enum Frame {
  Config = 0x01,
  Spawn = 0x02,
  Stdin = 0x03,
  StdinEof = 0x04,
  Kill = 0x05,
  Pause = 0x06,
  Resume = 0x07,
  Ready = 0x80,
  Started = 0x81,
  Stdout = 0x82,
  Stderr = 0x83,
  Exit = 0x84,
  SpawnError = 0x85,
  StdinPause = 0x86,
  StdinResume = 0x87,
}

const headerBytes = 12;
/** Bytes of frames held for one tick's write before a job's stdin waits for it to go. */
const maxBatchBytes = 64 * 1024;
const protocolVersion = 1;
const envInheritFlag = 2;

function frame(type: Frame, id: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(headerBytes + length);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(id >>> 0, 4);
  out.writeUInt32LE(length, 8);
  payload?.copy(out, headerBytes);
  return out;
}

/** `u32 count`, then NUL-terminated strings. */
function stringList(strings: readonly string[]): Buffer {
  const body = Buffer.from(strings.map((s) => `${s}\0`).join(''));
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32LE(strings.length, 0);
  body.copy(out, 4);
  return out;
}

/** One function process, as the helper reports it. */
class HelperJob implements FunctionProcess {
  pid: number | undefined;
  readonly stdin: Writable;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exited: Promise<ProcessExit>;
  #settle!: (exit: ProcessExit) => void;
  #done = false;
  #stdinHeld: (() => void) | undefined;
  #stdinPaused = false;
  #stdoutPaused = false;

  constructor(
    readonly id: number,
    private readonly send: (type: Frame, id: number, payload?: Buffer) => void,
    /** Calls back once the pipe to the helper has room (it is shared by every job). */
    private readonly whenPipeHasRoom: (callback: () => void) => void,
  ) {
    this.stdout = new Readable({
      read: () => {
        if (this.#stdoutPaused && !this.#done) {
          this.#stdoutPaused = false;
          this.send(Frame.Resume, id);
        }
      },
    });
    this.stderr = new Readable({ read() {} });
    this.stdin = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (this.#done) return callback();
        this.send(Frame.Stdin, id, chunk);
        // Backpressure twice over: the helper's own (its pipe to the process is full) and the
        // pipe to the helper, which node would otherwise buffer without bound (a 200 MB upload).
        this.whenPipeHasRoom(() => {
          if (this.#stdinPaused && !this.#done) this.#stdinHeld = callback;
          else callback();
        });
      },
      final: (callback) => {
        if (!this.#done) this.send(Frame.StdinEof, id);
        callback();
      },
    });
    this.exited = new Promise((resolve) => (this.#settle = resolve));
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.#done) return;
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32LE(constants.signals[signal], 0);
    this.send(Frame.Kill, this.id, payload);
  }

  onStdout(chunk: Buffer): void {
    // The frame is a view into a buffer the reader reuses: keep a copy.
    if (!this.stdout.push(Buffer.from(chunk)) && !this.#stdoutPaused) {
      this.#stdoutPaused = true;
      this.send(Frame.Pause, this.id);
    }
  }

  onStderr(chunk: Buffer): void {
    this.stderr.push(Buffer.from(chunk));
  }

  onStdinPause(paused: boolean): void {
    this.#stdinPaused = paused;
    if (!paused) {
      const held = this.#stdinHeld;
      this.#stdinHeld = undefined;
      held?.();
    }
  }

  /** Ends both output streams, then reports the exit once they have been read to the end. */
  finish(exit: ProcessExit): void {
    if (this.#done) return;
    this.#done = true;
    this.onStdinPause(false);
    const ended = (stream: Readable) =>
      new Promise<void>((resolve) => {
        stream.once('end', resolve);
        stream.once('close', resolve);
        stream.push(null);
        // Output nobody reads would never end; it is dropped with the exit.
        if (stream.readableFlowing === null) stream.resume();
      });
    void Promise.all([ended(this.stdout), ended(this.stderr)]).then(() => this.#settle(exit));
  }
}

/**
 * Starts function processes through fnbus-spawner. `ready` resolves false when the helper
 * cannot be used (then the caller falls back to child_process). A helper that dies later fails
 * the calls in flight and is started again.
 */
export class SpawnHelper implements ProcessLauncher {
  readonly #command: readonly string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #logger: Logger;
  readonly #jobs = new Map<number, HelperJob>();
  #helper!: ChildProcess;
  #nextId = 1;
  #pending: Buffer | undefined;
  #closing = false;
  #wasReady = false;
  #outgoing: Buffer[] = [];
  #outgoingBytes = 0;
  /** Jobs' stdin writes waiting for the pipe to the helper to drain. */
  #waitingForRoom: (() => void)[] = [];
  ready!: Promise<boolean>;

  /** `env` is the environment every function process starts from. */
  readonly #cwd: string | undefined;

  constructor(command: readonly string[], env: NodeJS.ProcessEnv, logger: Logger, cwd?: string) {
    this.#command = command;
    this.#env = env;
    this.#cwd = cwd;
    this.#logger = logger;
    this.#start();
  }

  static available(): boolean {
    return existsSync(spawnHelperPath);
  }

  #start(): void {
    // A process group of its own, so a terminal's Ctrl-C reaches the watchdog (which drains)
    // but not the helper; the helper ends when its stdin closes, i.e. with the watchdog.
    // The helper's folder is every function process's: they inherit it.
    const helper = spawn(spawnHelperPath, [], {
      env: this.#env,
      cwd: this.#cwd,
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true,
    });
    this.#helper = helper;
    this.#pending = undefined;
    this.ready = new Promise((resolve) => {
      this.#onReady = resolve;
      helper.once('error', () => resolve(false));
    });
    helper.stdin?.on('error', () => {});
    helper.stdin?.on('drain', this.#releaseWaiting);
    helper.stdout?.on('data', (chunk: Buffer) => this.#onData(chunk));
    helper.once('exit', (code, signal) => this.#onHelperExit(helper, code, signal));
    const config = Buffer.allocUnsafe(16);
    config.writeUInt32LE(protocolVersion, 0);
    config.writeUInt32LE(envInheritFlag, 4);
    config.writeUInt32LE(this.#command.length, 8);
    config.writeUInt32LE(0, 12);
    const argv = Buffer.from(this.#command.map((word) => `${word}\0`).join(''));
    this.#send(Frame.Config, 0, Buffer.concat([config, argv]));
  }

  #onReady: (ready: boolean) => void = () => {};

  launch(extraEnv: Record<string, string>): FunctionProcess {
    let id = this.#nextId;
    while (id === 0 || this.#jobs.has(id)) id = (id + 1) >>> 0;
    this.#nextId = (id + 1) >>> 0;
    const job = new HelperJob(id, this.#send, this.#whenPipeHasRoom);
    this.#jobs.set(id, job);
    this.#send(
      Frame.Spawn,
      id,
      stringList(Object.entries(extraEnv).map(([name, value]) => `${name}=${value}`)),
    );
    return job;
  }

  close(): void {
    this.#closing = true;
    this.#helper.stdin?.end();
  }

  /** Frames sent in one tick go to the helper in one write. */
  readonly #send = (type: Frame, id: number, payload?: Buffer): void => {
    const out = frame(type, id, payload);
    this.#outgoing.push(out);
    this.#outgoingBytes += out.length;
    if (this.#outgoing.length === 1) process.nextTick(this.#flush);
  };

  readonly #flush = (): void => {
    const frames = this.#outgoing;
    this.#outgoing = [];
    this.#outgoingBytes = 0;
    const stdin = this.#helper.stdin;
    if (
      stdin?.write(frames.length === 1 ? (frames[0] as Buffer) : Buffer.concat(frames)) !== false
    ) {
      this.#releaseWaiting();
    }
  };

  readonly #whenPipeHasRoom = (callback: () => void): void => {
    const stdin = this.#helper.stdin;
    // A small body goes on at once (its frames leave in the tick's one write, as ever); past a
    // batch's worth, wait for the tick's flush, then for a drain if the pipe is full.
    const full = stdin?.writableNeedDrain === true || this.#outgoingBytes > maxBatchBytes;
    if (stdin && !stdin.destroyed && full) {
      this.#waitingForRoom.push(callback);
    } else callback();
  };

  readonly #releaseWaiting = (): void => {
    if (!this.#helper.stdin?.writableNeedDrain) this.#runWaiting();
  };

  #runWaiting(): void {
    const waiting = this.#waitingForRoom;
    this.#waitingForRoom = [];
    for (const callback of waiting) callback();
  }

  #onData(chunk: Buffer): void {
    const data = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    let offset = 0;
    while (data.length - offset >= headerBytes) {
      const length = data.readUInt32LE(offset + 8);
      if (data.length - offset - headerBytes < length) break;
      const type = data[offset] as Frame;
      const id = data.readUInt32LE(offset + 4);
      const payload = data.subarray(offset + headerBytes, offset + headerBytes + length);
      offset += headerBytes + length;
      this.#onFrame(type, id, payload);
    }
    this.#pending = offset < data.length ? Buffer.from(data.subarray(offset)) : undefined;
  }

  #onFrame(type: Frame, id: number, payload: Buffer): void {
    if (type === Frame.Ready) {
      this.#wasReady = true;
      this.#onReady(true);
      return;
    }
    const job = this.#jobs.get(id);
    if (!job) return;
    switch (type) {
      case Frame.Started:
        job.pid = payload.readUInt32LE(0);
        break;
      case Frame.Stdout:
        job.onStdout(payload);
        break;
      case Frame.Stderr:
        job.onStderr(payload);
        break;
      case Frame.StdinPause:
        job.onStdinPause(true);
        break;
      case Frame.StdinResume:
        job.onStdinPause(false);
        break;
      case Frame.Exit: {
        this.#jobs.delete(id);
        const code = payload.readInt32LE(0);
        const signal = payload.readInt32LE(4);
        job.finish({
          code: signal ? null : code,
          signal: signal ? (signalName(signal) ?? 'SIGKILL') : null,
        });
        break;
      }
      case Frame.SpawnError: {
        this.#jobs.delete(id);
        job.finish({ code: null, signal: null, error: new Error(payload.subarray(4).toString()) });
        break;
      }
    }
  }

  #onHelperExit(helper: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (helper !== this.#helper) return;
    this.#onReady(false);
    const error = new Error(`fnbus-spawner exited (${signal ?? `code ${code}`})`);
    for (const job of this.#jobs.values()) job.finish({ code: null, signal: null, error });
    this.#jobs.clear();
    this.#runWaiting();
    // One that never became ready is not started again: the caller falls back to child_process.
    if (this.#closing || !this.#wasReady) return;
    this.#wasReady = false;
    this.#logger.error({ err: error }, 'fnbus-spawner died; starting it again');
    this.#start();
  }
}

function signalName(number: number): NodeJS.Signals | undefined {
  return (Object.keys(constants.signals) as NodeJS.Signals[]).find(
    (name) => constants.signals[name] === number,
  );
}
