// GNAP token introspection as a resource server does it (Rafiki's token-introspection API).
//
// There is no official npm introspection client on the registry (`@interledger/token-introspection`
// is a workspace package of Rafiki and is not published), so this is plain fetch; every answer is
// validated against specs/token-introspection.yaml with the same validator the official
// Open Payments client uses for its own responses (@interledger/openapi).

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOpenAPI, HttpMethod } from '@interledger/openapi';

const SPEC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../specs/token-introspection.yaml');

let validatorPromise;
function validator() {
  validatorPromise ??= createOpenAPI(SPEC).then((api) =>
    api.createResponseValidator({ path: '/', method: HttpMethod.POST })
  );
  return validatorPromise;
}

export class IntrospectionError extends Error {}

/**
 * POST {privateUrl}/ {access_token, access?}. Returns the parsed body after checking that the
 * status is 200, the content type is JSON and the body validates against the spec.
 */
export async function introspect(privateUrl, accessToken, access) {
  const body = { access_token: accessToken };
  if (access) body.access = access;
  const res = await fetch(`${privateUrl}/`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body)
  });
  const text = await res.text();
  if (res.status !== 200) {
    throw new IntrospectionError(`introspection answered ${res.status}, want 200: ${text}`);
  }
  if (!/^application\/json\b/i.test(res.headers.get('content-type') ?? '')) {
    throw new IntrospectionError(`introspection content-type ${res.headers.get('content-type')}, want application/json`);
  }
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IntrospectionError(`introspection body is not JSON: ${text}`);
  }
  const validate = await validator();
  try {
    validate({ status: res.status, body: json });
  } catch (e) {
    const errors = (e.errors ?? []).map((x) => x.message).join('; ');
    throw new IntrospectionError(`introspection response fails token-introspection.yaml: ${errors}\nbody: ${text}`);
  }
  return json;
}
