// The key admin's actions: add, edit (limits, expiry, weight), rotate and revoke, each a dialog
// that calls the key API; a new key is shown once, with a copy button.
import { api, keyPath } from './api.js'
import { byId, expiryText } from './dom.js'

const LIMIT_FIELDS = ['tokens_per_day', 'tokens_per_month', 'requests_per_day', 'requests_per_minute', 'tokens_per_minute', 'concurrent']

/**
 * Wires the dialogs once; `onChanged` is called after every change the API accepted. Returns
 * the actions the key list's buttons call: `add()`, `edit(key)`, `rotate(key)`, `revoke(key)`.
 */
export function setUpKeyDialogs (onChanged) {
  for (const dialog of document.querySelectorAll('dialog')) {
    for (const cancel of dialog.querySelectorAll('.cancel')) cancel.addEventListener('click', () => dialog.close())
  }
  // The key leaves the page with its dialog (Done, or Escape): it is shown once.
  const forgetSecret = () => {
    byId('secret-value').value = ''
    byId('secret-status').textContent = ''
  }
  const secretDialog = byId('secret-dialog')
  secretDialog.querySelector('.cancel').addEventListener('click', forgetSecret)
  secretDialog.addEventListener('close', forgetSecret)
  byId('copy-secret').addEventListener('click', async () => {
    const copied = await copyText(byId('secret-value'))
    byId('secret-status').textContent = copied ? 'Copied to the clipboard.' : 'The browser would not copy it: select the key and copy it by hand.'
  })

  let editing = null
  const form = byId('key-form')
  submitWith(form, byId('key-form-error'), async () => {
    if (editing === null) {
      const minted = await api('POST', 'proxy/keys', newKeyBody(form))
      byId('key-form-dialog').close()
      showSecret(`New key "${minted.name}"`, minted.key)
    } else {
      const changes = keyChanges(form, editing)
      if (Object.keys(changes).length > 0) await api('PATCH', keyPath(editing.name), changes)
      byId('key-form-dialog').close()
    }
    onChanged()
  })

  let rotating = null
  submitWith(byId('rotate-form'), byId('rotate-error'), async () => {
    const grace = byId('rotate-grace').value.trim()
    const rotated = await api('POST', keyPath(rotating.name, 'rotate'), grace === '' ? {} : { grace })
    byId('rotate-dialog').close()
    const until = rotated.previous_key_valid_until
    showSecret(`New key for "${rotated.name}"`, rotated.key, until === null ? 'The old key has stopped working.' : `The old key works until ${new Date(until).toLocaleString()}.`)
    onChanged()
  })

  let revoking = null
  submitWith(byId('revoke-form'), byId('revoke-error'), async () => {
    await api('DELETE', keyPath(revoking.name))
    byId('revoke-dialog').close()
    onChanged()
  })

  return {
    add () {
      editing = null
      form.reset()
      openKeyForm('Add key', 'Add', true)
      byId('key-name').focus()
    },
    edit (key) {
      editing = key
      form.reset()
      form.elements.expires_at.value = expiryText(key.expires_at)
      for (const field of LIMIT_FIELDS) form.elements[field].value = key.limits[field] ?? ''
      form.elements.weight.value = key.weight === 1 ? '' : key.weight
      openKeyForm(`Edit "${key.name}"`, 'Save', false)
    },
    rotate (key) {
      rotating = key
      byId('rotate-form').reset()
      byId('rotate-title').textContent = `Rotate "${key.name}"`
      openDialog('rotate-dialog', 'rotate-error')
    },
    revoke (key) {
      revoking = key
      byId('revoke-title').textContent = `Revoke "${key.name}"?`
      openDialog('revoke-dialog', 'revoke-error')
    }
  }
}

function openKeyForm (title, submitLabel, adding) {
  byId('key-form-title').textContent = title
  byId('key-form-submit').textContent = submitLabel
  for (const part of document.querySelectorAll('#key-form .add-only')) part.hidden = !adding
  byId('key-name').required = adding
  openDialog('key-form-dialog', 'key-form-error')
}

function openDialog (id, errorId) {
  byId(errorId).textContent = ''
  byId(id).showModal()
}

/** Runs `action` on submit, with the submit button disabled meanwhile and the API's refusal shown in `error`. */
function submitWith (form, error, action) {
  form.addEventListener('submit', async event => {
    event.preventDefault()
    const submit = form.querySelector('button[type=submit]')
    submit.disabled = true
    error.textContent = ''
    try {
      await action()
    } catch (err) {
      error.textContent = err.message
    } finally {
      submit.disabled = false
    }
  })
}

/** An integer field's value, or null when empty. */
function count (input) {
  return input.value.trim() === '' ? null : Number(input.value)
}

/** POST /proxy/keys's body from the form: only the fields filled in. */
function newKeyBody (form) {
  const body = {
    name: form.elements.name.value.trim(),
    scopes: [...form.querySelectorAll('input[name=scope]:checked')].map(box => box.value)
  }
  const models = form.elements.models.value.split(',').map(model => model.trim()).filter(model => model !== '')
  if (models.length > 0) body.models = models
  const expires = form.elements.expires_at.value.trim()
  if (expires !== '') body.expires_at = expires
  const limits = {}
  for (const field of LIMIT_FIELDS) {
    const value = count(form.elements[field])
    if (value !== null) limits[field] = value
  }
  if (Object.keys(limits).length > 0) body.limits = limits
  const weight = count(form.elements.weight)
  if (weight !== null) body.weight = weight
  return body
}

/** PATCH /proxy/keys/NAME's body: the fields that differ from `key`; an emptied one is null (removed). */
function keyChanges (form, key) {
  const changes = {}
  const limits = {}
  for (const field of LIMIT_FIELDS) {
    const value = count(form.elements[field])
    if (value !== (key.limits[field] ?? null)) limits[field] = value
  }
  if (Object.keys(limits).length > 0) changes.limits = limits
  const expires = form.elements.expires_at.value.trim()
  if (expires !== expiryText(key.expires_at)) changes.expires_at = expires === '' ? null : expires
  const weight = count(form.elements.weight)
  if ((weight ?? 1) !== key.weight) changes.weight = weight
  return changes
}

function showSecret (title, key, note = '') {
  byId('secret-title').textContent = title
  byId('secret-value').value = key
  byId('secret-status').textContent = note
  byId('secret-dialog').showModal()
  byId('secret-value').select()
}

/** Copies the input's text: the Clipboard API where the page is a secure context, else the selection. */
async function copyText (input) {
  try {
    await navigator.clipboard.writeText(input.value)
    return true
  } catch {
    input.focus()
    input.select()
    return document.execCommand('copy')
  }
}
