import path from 'node:path';
import type { Logger } from '../../shared/logger.js';

/** The demo page's script: `demo/main.ts` and the client it imports, bundled in memory. */
export type DemoBundle = () => Promise<string>;

/**
 * Bundles `<root>/demo/main.ts` with esbuild on the first call and keeps the result; a failed build is
 * logged and tried again on the next call. esbuild is a devDependency: it is imported here, on the first
 * call, and nowhere else, so a production gateway (which never serves the demo) never loads it.
 */
export function createDemoBundle(deps: { readonly root: string; readonly logger: Logger }): DemoBundle {
  let built: Promise<string> | undefined;
  const build = async (): Promise<string> => {
    const started = performance.now();
    const esbuild = await import('esbuild');
    const result = await esbuild.build({
      entryPoints: [path.join(deps.root, 'demo', 'main.ts')],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      sourcemap: 'inline',
      logLevel: 'silent',
    });
    const [output] = result.outputFiles;
    if (!output) throw new Error('esbuild wrote no output for demo/main.ts');
    deps.logger.info({ ms: Math.round(performance.now() - started), bytes: output.contents.byteLength }, 'demo page bundled');
    return output.text;
  };
  return () => {
    built ??= build().catch((error: unknown) => {
      built = undefined;
      deps.logger.error({ err: error }, 'could not bundle the demo page');
      throw error;
    });
    return built;
  };
}
