// Virtual keys (SPEC 13) through the official openai npm package.
//
// Run by tests/e2e/keys.py, which starts the servers and passes:
//   TG_BASE_URL      http://127.0.0.1:<port> (lighttpd serving tollgate)
//   TG_KEY           a virtual key, allowed TG_MODEL only
//   TG_USER          a customer with budget left
//   TG_MODEL         the model name to use
//   TG_LIMITED_KEY   a virtual key with models [] (LiteLLM's end-user test)
//   TG_LIMITED_USER  a customer on a budget with tpm_limit 2
// It does the calls with the SDK's default retries and prints ONE JSON
// object on stdout with what it saw; keys.py checks it and speaks TAP.
// Anything unexpected is reported in the JSON ("errors"), never thrown.
'use strict';

const OpenAI = require('openai');

const base = process.env.TG_BASE_URL;
const model = process.env.TG_MODEL;

function client(apiKey, calls) {
  return new OpenAI({
    apiKey,
    baseURL: base,
    // maxRetries left at its default (2), as an application would.
    timeout: 30000,
    fetch: async (url, init) => {
      calls.push({ url: String(url), t: Date.now() });
      return fetch(url, init);
    },
  });
}

async function main() {
  const out = { errors: [] };
  const step = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (e) {
      out.errors.push(`${name}: ${e && e.stack ? e.stack : e}`);
    }
  };
  const calls = [];
  const keyed = client(process.env.TG_KEY, calls);

  await step('nonstream', async () => {
    const { data, response } = await keyed.chat.completions
      .create({
        model,
        user: process.env.TG_USER,
        messages: [{ role: 'user', content: 'Say hello' }],
        fake: { usage: { prompt_tokens: 11, completion_tokens: 13 } },
      })
      .withResponse();
    return {
      content: data.choices && data.choices[0] && data.choices[0].message.content,
      call_id: response.headers.get('x-litellm-call-id'),
      cost: response.headers.get('x-litellm-response-cost'),
    };
  });

  await step('stream', async () => {
    const { data: stream, response } = await keyed.chat.completions
      .create({
        model,
        user: process.env.TG_USER,
        stream: true,
        messages: [{ role: 'user', content: 'Count to three' }],
        fake: { chunks: 3, usage: { prompt_tokens: 5, completion_tokens: 7 } },
      })
      .withResponse();
    let text = '';
    for await (const chunk of stream) {
      for (const c of chunk.choices || []) {
        if (c.delta && typeof c.delta.content === 'string') text += c.delta.content;
      }
    }
    return { text, call_id: response.headers.get('x-litellm-call-id') };
  });

  await step('models', async () => {
    const ids = [];
    for await (const m of keyed.models.list()) ids.push(m.id);
    return ids;
  });

  await step('other_model', async () => {
    try {
      await keyed.chat.completions.create({
        model: process.env.TG_OTHER_MODEL,
        messages: [{ role: 'user', content: 'hi' }],
      });
      return { raised: false };
    } catch (e) {
      return { raised: true, status: e.status, is_auth: e instanceof OpenAI.AuthenticationError,
               error: e.error };
    }
  });

  // LiteLLM's test for end users with keys: 10 calls with the key and the
  // customer on a tpm_limit 2 budget, default retries: fewer than 5 pass.
  await step('end_user_tpm', async () => {
    const limitedCalls = [];
    const limited = client(process.env.TG_LIMITED_KEY, limitedCalls);
    const started = Date.now();
    let passed = 0;
    const failures = [];
    for (let i = 0; i < 10; i++) {
      try {
        await limited.chat.completions.create({
          model,
          user: process.env.TG_LIMITED_USER,
          messages: [{ role: 'user', content: 'Hey!' }],
        });
        passed++;
      } catch (e) {
        failures.push({ status: e.status, type: e.error && e.error.type,
                        message: e.error && e.error.message,
                        retry_after: e.headers && e.headers.get && e.headers.get('retry-after'),
                        should_retry: e.headers && e.headers.get && e.headers.get('x-should-retry') });
      }
    }
    return { passed, requests: limitedCalls.length, seconds: (Date.now() - started) / 1000,
             failures };
  });

  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ errors: [`main: ${e && e.stack ? e.stack : e}`] }) + '\n');
});
