// The official OpenAI client (npm `openai`, pinned in package.json) drives `quantlab serve`: model list,
// plain chat, chat with tools, streaming (raw chunks and the library's own stream helper, which
// assembles tool calls), completions with logprobs and echo, and a wrong key.
// Usage: node client_test.mjs BASE_URL MODEL_ID TOOLS_JSON   (the key comes from QUANTLAB_API_KEY)
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [baseURL, model, toolsPath] = process.argv.slice(2);
const apiKey = process.env.QUANTLAB_API_KEY;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const tools = JSON.parse(readFileSync(toolsPath, 'utf8'));
const direct = [{ role: 'user', content: 'How many hours are in a day?' }];
const toolQuery = [{ role: 'user', content: 'What time is it in Rome?' }];
let checks = 0;
const check = (name, fn) => fn().then(() => { checks++; console.log(`ok - ${name}`); });

await check('models.list names the served model', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.deepEqual(ids, [model]);
});

let plainText = '';
await check('chat: a direct question gets content', async () => {
  const r = await client.chat.completions.create({ model, messages: direct, tools, temperature: 0, max_tokens: 48 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.match(r.choices[0].message.content, /24/);
  assert.equal(r.choices[0].message.tool_calls, undefined);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  plainText = r.choices[0].message.content;
});

await check('chat with tools: a tool question gets tool_calls', async () => {
  const r = await client.chat.completions.create({ model, messages: toolQuery, tools, temperature: 0, max_tokens: 64 });
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  const call = r.choices[0].message.tool_calls[0];
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_time');
  assert.equal(typeof JSON.parse(call.function.arguments), 'object');
});

await check('streaming: chunks join to the plain reply, usage last', async () => {
  const stream = await client.chat.completions.create({
    model, messages: direct, tools, temperature: 0, max_tokens: 48, stream: true, stream_options: { include_usage: true },
  });
  let text = '', chunks = 0, usage = null, finish = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    text += choice.delta?.content ?? '';
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  assert.equal(text, plainText);
  assert.equal(finish, 'stop');
  assert.ok(chunks > 3, `only ${chunks} chunks`);
  assert.ok(usage && usage.completion_tokens > 0);
});

await check("streaming with tools through the library's stream helper", async () => {
  const runner = client.chat.completions.stream({ model, messages: toolQuery, tools, temperature: 0, max_tokens: 64 });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  assert.equal(final.choices[0].message.tool_calls[0].function.name, 'get_time');
});

await check('completions: logprobs and echo', async () => {
  const prompt = 'The capital of France is';
  const r = await client.completions.create({ model, prompt, max_tokens: 4, temperature: 0, logprobs: 2, echo: true });
  const c = r.choices[0];
  assert.ok(c.text.startsWith(prompt));
  const lp = c.logprobs;
  assert.equal(lp.tokens.length, lp.token_logprobs.length);
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.tokens.length, r.usage.prompt_tokens + 4);
  for (const x of lp.token_logprobs.slice(1)) assert.ok(x <= 0, `log-probability ${x} above 0`);
  for (const top of lp.top_logprobs.slice(1)) assert.equal(Object.keys(top).length <= 2, true);
  assert.equal(lp.tokens.join(''), c.text);
});

await check('a wrong key is refused with 401', async () => {
  const wrong = new OpenAI({ baseURL, apiKey: 'not-the-key', maxRetries: 0 });
  await assert.rejects(wrong.chat.completions.create({ model, messages: direct, max_tokens: 4 }),
    (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);
});

await check('a bad request is a 400 naming the field', async () => {
  await assert.rejects(client.chat.completions.create({ model, messages: direct, temperature: 'hot' }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'temperature');
});

console.log(`${checks} checks passed`);
