// CrateDB's errors in the writer's terms. CrateDB sends almost every error as SQLSTATE XX000
// (`PGError.fromThrowable`'s default), so the code alone cannot tell a cluster hiccup from a row
// it refuses: the message (CrateDB's exception names and texts) decides.
import { errorMessage } from '../../errors.js';
import { classifyTargetError, type TargetErrorClass } from '../errors.js';

/** Conditions that pass on their own: retry the batch with backoff, never dead-letter its rows. */
const TRANSIENT = [
  // shards not (yet) available: a node restarting, a shard relocating or recovering
  /ShardNotAvailable|UnavailableShards|NoShardAvailable|primary shard is not active|shard is not active|no active shard|ShardNotFound/i,
  // cluster blocks: no elected master, state not recovered after a restart, disk watermark
  /no master|NoMasterBlock|ClusterBlock|state not recovered|blocked by: \[/i,
  // a node left or the coordinator lost its connection to it
  /NodeDisconnected|NodeNotConnected|NodeClosed|ConnectTransport|node disconnected|ReceiveTimeoutTransport/i,
  // memory protection and overload: the request can succeed once load drops
  /CircuitBreaking|Data too large|rejected execution|EsRejectedExecution/i,
  // a job killed by the cluster (node shutting down, KILL ALL by an operator)
  /JobKilled|Job killed/i,
];

/** SQL the relay sent is malformed: up to 6.3 as XX000 with the parser's message. */
const SYNTAX = /^(SQLParseException|line \d+:\d+: |mismatched input|no viable alternative)/i;

export function classifyCrateError(error: unknown): TargetErrorClass {
  const generic = classifyTargetError(error);
  if (generic.kind === 'transient') return generic;
  const message = errorMessage(error);
  const code = (error as { code?: unknown } | null)?.code;
  if (TRANSIENT.some((re) => re.test(message))) return { kind: 'transient', message };
  if (/MissingPrivilege|Missing '?\w+'? privilege|privilege.* for user/i.test(message)) {
    return {
      kind: 'fatal',
      message: `the CrateDB user lacks a privilege the relay needs (${message}); grant it DQL, DML and DDL on the schema (GRANT DQL, DML, DDL ON SCHEMA doc TO "user") and start the relay again`,
    };
  }
  if (code === '42P01' || /RelationUnknown|Relation '.*' unknown/i.test(message)) {
    return {
      kind: 'fatal',
      message: `a table the relay writes to is gone (${message}), dropped while the relay was running; start the relay again to create it, and re-copy the collection (delete its checkpoint) if rows were lost, or use --on-drop to follow drops in MongoDB`,
    };
  }
  if (/SchemaUnknown|Schema '.*' unknown/i.test(message)) return { kind: 'fatal', message };
  if (code === '42601' || SYNTAX.test(message)) {
    return {
      kind: 'fatal',
      message: `CrateDB refused the relay's SQL as malformed (${message}); this is a relay bug, please report it with this message`,
    };
  }
  return generic;
}
