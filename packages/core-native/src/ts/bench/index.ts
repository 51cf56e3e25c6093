export async function runBench(_argv: string[]): Promise<number> { throw new Error("unicc bench is not built yet"); }
