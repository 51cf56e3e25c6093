// Proof of the job's secret on a connection, without sending the secret itself: the accepting side
// sends a fresh random challenge and the dialling side answers with an HMAC of it keyed by the
// token. Every TypeScript-side listener of a job (the store, the bridge) uses these three helpers.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const CHALLENGE_BYTES = 32;
export const ANSWER_BYTES = 32;

export function newChallenge(): Buffer {
  return randomBytes(CHALLENGE_BYTES);
}

/** The answer a peer that knows `token` gives to `challenge`; `purpose` keeps answers of one listener kind from being replayed on another. */
export function answerChallenge(token: string, challenge: Buffer, purpose: string): Buffer {
  return createHmac("sha256", token).update(`unicc-auth-v1/${purpose}/`).update(challenge).digest();
}

export function checkAnswer(token: string, challenge: Buffer, purpose: string, answer: Buffer): boolean {
  const expected = answerChallenge(token, challenge, purpose);
  return answer.length === expected.length && timingSafeEqual(answer, expected);
}
