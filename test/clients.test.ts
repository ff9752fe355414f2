import assert from 'node:assert/strict'
import { test } from 'node:test'
import Anthropic from '@anthropic-ai/sdk'
import { Ollama } from 'ollama'
import OpenAI from 'openai'
import { bearer, TOKENS } from './fixtures/keys.js'
import { startStack } from './helper.js'

// Stock clients pointed at the proxy: only the base URL and a key change.

test('the official ollama client: inference and model information with a generate key', async (t) => {
  const stack = await startStack(t)
  const ollama = new Ollama({ host: stack.url, headers: bearer(TOKENS.generate) })

  const chat = await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(chat.done, true)
  assert.equal(typeof chat.message.content, 'string')

  let parts = 0
  let content = ''
  for await (const part of await ollama.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true })) {
    parts++
    content += part.message.content
  }
  assert.ok(parts >= 2)
  assert.ok(content.length > 0)

  const generated = await ollama.generate({ model: 'llama3.2', prompt: 'hi' })
  assert.equal(generated.done, true)
  let generatedParts = 0
  for await (const part of await ollama.generate({ model: 'llama3.2', prompt: 'hi', stream: true })) generatedParts += part.done ? 0 : 1
  assert.ok(generatedParts >= 1)

  const embed = await ollama.embed({ model: 'nomic-embed-text', input: ['a', 'b'] })
  assert.equal(embed.embeddings.length, 2)
  const embeddings = await ollama.embeddings({ model: 'nomic-embed-text', prompt: 'a' })
  assert.ok(embeddings.embedding.length > 0)

  const list = await ollama.list()
  assert.ok(list.models.some(m => m.name === 'llama3.2:latest'))
  const shown = await ollama.show({ model: 'llama3.2' })
  assert.ok(shown.details !== undefined)
  const ps = await ollama.ps()
  assert.ok(Array.isArray(ps.models))
  const version = await ollama.version()
  assert.equal(typeof version.version, 'string')

  await assert.rejects(ollama.pull({ model: 'llama3.2' }), (err: Error & { status_code?: number }) => err.status_code === 401, 'a generate key may not pull')
  await assert.rejects(ollama.show({ model: 'nope' }), (err: Error & { status_code?: number }) => err.status_code === 404 && /not found/.test(err.message))
})

test('the official ollama client: pull, push, create, copy and delete with a model key', async (t) => {
  const stack = await startStack(t)
  const ollama = new Ollama({ host: stack.url, headers: bearer(TOKENS.model) })
  const statuses: string[] = []
  for await (const progress of await ollama.pull({ model: 'llama3.2', stream: true })) statuses.push(progress.status)
  assert.equal(statuses.at(-1), 'success')
  assert.ok(statuses.length > 2, 'progress streamed')
  assert.equal((await ollama.pull({ model: 'llama3.2' })).status, 'success')
  assert.equal((await ollama.push({ model: 'alice/private' })).status, 'success')
  assert.equal((await ollama.create({ model: 'mario', from: 'llama3.2', system: 'You are Mario.' })).status, 'success')
  assert.equal((await ollama.copy({ source: 'mario', destination: 'luigi' })).status, 'success')
  assert.equal((await ollama.delete({ model: 'luigi' })).status, 'success')
  assert.equal(stack.fake.last('/api/delete')?.method, 'DELETE')
  assert.deepEqual(stack.fake.last('/api/delete')?.json, { name: 'luigi' }, 'ollama-js sends the deprecated alias')
  await assert.rejects(ollama.chat({ model: 'llama3.2', messages: [] }), (err: Error & { status_code?: number }) => err.status_code === 401, 'a model key may not generate')
})

test('the official openai client through /v1', async (t) => {
  const stack = await startStack(t)
  const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: TOKENS.generate, maxRetries: 0 })
  const completion = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(completion.object, 'chat.completion')
  assert.ok(completion.usage !== undefined)

  const stream = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: true, stream_options: { include_usage: true } })
  let deltas = 0
  let usage = 0
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta?.content) deltas++
    if (chunk.usage) usage = chunk.usage.completion_tokens
  }
  assert.ok(deltas >= 1)
  assert.ok(usage >= 1)

  const text = await openai.completions.create({ model: 'llama3.2', prompt: 'hi' })
  assert.equal(text.object, 'text_completion')
  const vectors = await openai.embeddings.create({ model: 'nomic-embed-text', input: 'hi' })
  assert.ok(vectors.data[0].embedding.length > 0)
  const models = await openai.models.list()
  assert.ok(models.data.length > 0)
  const model = await openai.models.retrieve('llama3.2')
  assert.equal(model.object, 'model')

  const wrong = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: TOKENS.other, maxRetries: 0 })
  await assert.rejects(wrong.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }), OpenAI.AuthenticationError)
  await assert.rejects(openai.chat.completions.create({ model: 'llama3.2', messages: [] }), OpenAI.BadRequestError)
  const notFound = await openai.models.retrieve('nope').then(() => null, (err: unknown) => err)
  assert.ok(notFound instanceof OpenAI.NotFoundError)
})

test('the official anthropic client through /v1/messages with x-api-key', async (t) => {
  const stack = await startStack(t)
  const anthropic = new Anthropic({ baseURL: stack.url, apiKey: TOKENS.generate, maxRetries: 0 })
  const message = await anthropic.messages.create({ model: 'llama3.2', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(message.type, 'message')
  assert.ok(message.usage.output_tokens >= 1)
  assert.equal(stack.fake.last('/v1/messages')?.headers['x-api-key'], undefined, 'the key is not forwarded')

  const events: string[] = []
  const stream = await anthropic.messages.create({ model: 'llama3.2', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], stream: true })
  for await (const event of stream) events.push(event.type)
  assert.equal(events[0], 'message_start')
  assert.equal(events.at(-1), 'message_stop')

  const wrong = new Anthropic({ baseURL: stack.url, apiKey: TOKENS.other, maxRetries: 0 })
  await assert.rejects(wrong.messages.create({ model: 'llama3.2', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] }), Anthropic.AuthenticationError)
})
