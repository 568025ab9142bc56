// Preloaded into a role (`node --import <this file>`): any import of esbuild (a devDependency, absent from
// the production image) fails with an error naming it, as it would in the image. The demo tests load a
// production gateway with it to show that nothing there reaches for the bundler.

import { register } from 'node:module';

const hooks = `
export async function resolve(specifier, context, next) {
  if (specifier === 'esbuild' || specifier.startsWith('esbuild/')) {
    throw Object.assign(new Error('forbidden import of esbuild (a devDependency)'), { code: 'ERR_MODULE_NOT_FOUND' });
  }
  return next(specifier, context);
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
