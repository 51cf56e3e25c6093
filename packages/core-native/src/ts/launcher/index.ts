export { launch, type LaunchIO, type LaunchResult } from "./launch.js";
export { launchOnSlurm } from "./slurm.js";
export {
  DEFAULT_GRACE_MS,
  DEFAULT_LAUNCH_AGENT,
  HelpRequested,
  parseHostfile,
  parseHosts,
  parseRunArgs,
  USAGE,
  UsageError,
  type HostSlots,
  type ElasticLaunch,
  type LaunchOptions,
  type RunArgs,
  type SlurmRequest,
} from "./options.js";
export { agentArgv, shellQuote } from "./agent.js";
export { relayLines } from "./relay.js";
