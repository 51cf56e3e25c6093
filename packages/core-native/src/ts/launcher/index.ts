export { launch, type LaunchResult } from "./launch.js";
export { parseRunArgs, parseHosts, parseHostfile, USAGE, UsageError, type LaunchOptions, type HostSlots } from "./options.js";
