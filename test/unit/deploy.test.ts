// No Docker engine runs here, so the stack is checked against the code instead: the compose file
// parses, every relay command line in it parses with the CLI's own option definitions and the
// service's environment, its variables and ports are the ones the code reads, .env.example lists
// every variable with its true default, and the Dockerfile's entrypoint exists in a fresh build.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { buildProgram } from '../../src/cli.js';
import { parseOptions } from '../support/relay.js';
import { relaySettings, workloadSettings } from '../../src/config.js';

const root = new URL('../../', import.meta.url);
const read = (file: string) => fs.readFileSync(new URL(file, root), 'utf8');
const compose = parse(read('docker-compose.yml')) as {
  services: Record<string, Record<string, unknown>>;
  volumes: Record<string, unknown>;
};

/** `${NAME:-default}` -> default, as docker compose does without a .env file. */
function interpolate(value: unknown): string {
  return String(value).replace(
    /\$\{(\w+):-([^}]*)\}/g,
    (_, _name: string, fallback: string) => fallback,
  );
}

function environmentOf(service: Record<string, unknown>): Record<string, string> {
  const env = (service.environment ?? {}) as Record<string, unknown>;
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(v)]));
}

/** The env twins of a command's options. */
function envVarsOf(command: string): Map<string, unknown> {
  const cmd = buildProgram().commands.find((c) => c.name() === command)!;
  return new Map(
    cmd.options
      .filter((o) => (o as { envVar?: string }).envVar)
      .map((o) => [(o as { envVar?: string }).envVar!, o.defaultValue]),
  );
}

/** Parses `command` as the CLI would, with `env` as the process environment. */
async function parseWithEnv(
  command: string[],
  env: Record<string, string>,
): Promise<Record<string, unknown>> {
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) {
    if (
      /^(MONGODB|TARGET|WORKLOAD|BATCH|SNAPSHOT|FULL|ON_|METRICS|LOG|STREAM|OBJECT|PROGRESS|TAIL|VERIFY|CHANGE)/.test(
        key,
      )
    ) {
      delete process.env[key];
    }
  }
  Object.assign(process.env, env);
  try {
    return await parseOptions(command[0]!, command.slice(1));
  } finally {
    process.env = saved;
  }
}

describe('docker-compose.yml', () => {
  it('runs MongoDB 7 as a self-initiating replica set and CrateDB as a single node, both with healthchecks', () => {
    const { mongodb, cratedb } = compose.services;
    expect(mongodb!.image).toMatch(/^mongo:7/);
    expect(mongodb!.command).toEqual(expect.arrayContaining(['--replSet', 'rs0']));
    expect(JSON.stringify((mongodb!.healthcheck as { test: string[] }).test)).toMatch(
      /rs\.initiate/,
    );
    expect(mongodb!.volumes).toEqual(['mongodb-data:/data/db']);
    expect(cratedb!.image).toMatch(/^crate:/);
    expect(cratedb!.command).toEqual(expect.arrayContaining(['-Cdiscovery.type=single-node']));
    expect(cratedb!.environment).toHaveProperty('CRATE_HEAP_SIZE');
    expect(cratedb!.ports).toEqual(expect.arrayContaining(['4200:4200', '5432:5432']));
    expect(cratedb!.healthcheck).toBeDefined();
    expect(Object.keys(compose.volumes)).toEqual(['mongodb-data', 'cratedb-data']);
  });

  it('starts the relay after both databases are healthy, with its metrics port published', async () => {
    const relay = compose.services.relay!;
    expect(relay.build).toBe('.');
    expect(relay.depends_on).toEqual({
      mongodb: { condition: 'service_healthy' },
      cratedb: { condition: 'service_healthy' },
    });
    const env = environmentOf(relay);
    expect(relay.ports).toEqual([`${env.METRICS_PORT}:${env.METRICS_PORT}`]);
    const settings = relaySettings(await parseWithEnv(relay.command as string[], env));
    expect(settings).toMatchObject({
      mongodbUrl: 'mongodb://mongodb:27017/?replicaSet=rs0',
      targetUrl: 'postgresql://crate@cratedb:5432/doc',
      metricsPort: Number(env.METRICS_PORT),
      // The whole database: the relay must not need the workload's collection to exist yet.
      collections: null,
    });
    // The replica set member name the relay is told about is the service name it can resolve.
    expect(JSON.stringify(compose.services.mongodb!.healthcheck)).toContain(
      "host: 'mongodb:27017'",
    );
  });

  it('has a workload service in a profile whose command parses', async () => {
    const workload = compose.services.workload!;
    expect(workload.profiles).toEqual(['workload']);
    const settings = workloadSettings(
      await parseWithEnv(workload.command as string[], environmentOf(workload)),
    );
    expect(settings).toMatchObject({ init: true, ops: null, durationMs: null, rate: 200 });
    expect(settings.scenario.name).toBe('bank');
  });

  it.each(['relay', 'workload'])('%s sets only variables its command reads', (name) => {
    const service = compose.services[name]!;
    const command = (service.command as string[])[0]!;
    const known = envVarsOf(command);
    for (const key of Object.keys(environmentOf(service)))
      expect(known.has(key), `${key} for ${command}`).toBe(true);
  });
});

describe('.env.example', () => {
  it('lists every variable the commands read, with its default', () => {
    const listed = new Map(
      read('.env.example')
        .split('\n')
        .map((line) => /^#? ?([A-Z_]+)=(.*)$/.exec(line))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => [m[1]!, m[2]!]),
    );
    const all = new Map<string, unknown>();
    for (const command of buildProgram().commands)
      for (const [env, def] of envVarsOf(command.name())) all.set(env, def);
    for (const [env, def] of all) {
      expect(listed.has(env), env).toBe(true);
      expect(listed.get(env), env).toBe(def === undefined ? '' : String(def));
    }
    const composeOnly = ['CRATE_HEAP_SIZE'];
    for (const env of listed.keys())
      expect(all.has(env) || composeOnly.includes(env), env).toBe(true);
  });
});

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');

  it('runs the built CLI as a non-root user on an official Node 20 image', () => {
    expect(dockerfile).toMatch(/^FROM node:20[^\s]* AS build$/m);
    expect(dockerfile.match(/^FROM node:20\S*$/m)).not.toBeNull();
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "bin\/relay\.js"\]$/m);
    for (const part of ['bin', 'sql', 'package.json'])
      expect(dockerfile).toMatch(new RegExp(`^COPY ${part} `, 'm'));
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist \.\/dist$/m);
    expect(read('.dockerignore')).toMatch(/^node_modules$/m);
  });

  it('has an entrypoint that exists in the build output', async () => {
    const bin = read('bin/relay.js');
    const imported = /from '\.\.\/(dist\/[\w/.-]+)'/.exec(bin)![1]!;
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-build-'));
    execFileSync(
      process.execPath,
      ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', outDir],
      {
        cwd: new URL('.', root),
      },
    );
    try {
      const built = path.join(outDir, imported.replace(/^dist\//, ''));
      expect(fs.existsSync(built)).toBe(true);
      expect(typeof (await import(built)).main).toBe('function');
    } finally {
      fs.rmSync(outDir, { recursive: true, force: true });
    }
    expect(fs.existsSync(new URL('sql/cratedb/data_table.sql', root))).toBe(true);
  }, 60_000);
});
