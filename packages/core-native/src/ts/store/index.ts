export { StoreServer } from "./server.js";
export { StoreClient } from "./client.js";
export { MAX_FRAME, MAX_KEY } from "./protocol.js";
