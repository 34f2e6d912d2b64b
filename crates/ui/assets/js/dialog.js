// Confirmation dialogs (native <dialog>: focus kept inside, Escape cancels).

import { h, message } from './dom.js';

/**
 * Asks for confirmation. `fields`: form controls shown in the dialog; `onConfirm(form)` runs
 * the action: if it throws, its message is shown in the dialog, which stays open. Resolves to
 * whether the action ran.
 */
export function confirmAction({ title, body, fields = [], confirmLabel, danger = false, onConfirm }) {
  return new Promise((resolve) => {
    const errorBox = h('div', { 'aria-live': 'assertive' });
    const confirm = h('button', { type: 'submit', class: danger ? 'danger' : null, value: 'confirm' }, confirmLabel);
    const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close('cancel') }, 'Cancel');
    const form = h('form', { method: 'dialog' },
      h('h2', { id: 'dialog-title' }, title),
      body ? h('div', {}, body) : null,
      fields,
      errorBox,
      h('menu', {}, cancel, confirm));
    const dialog = h('dialog', { 'aria-labelledby': 'dialog-title' }, form);
    let done = false;
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      errorBox.replaceChildren();
      try {
        await onConfirm(form);
        done = true;
        dialog.close('confirm');
      } catch (error) {
        errorBox.replaceChildren(message('error', 'Refused', ` ${error.message}`));
        confirm.disabled = false;
      }
    });
    dialog.addEventListener('close', () => { dialog.remove(); resolve(done); });
    document.body.append(dialog);
    dialog.showModal();
    (form.querySelector('input, select') ?? confirm).focus();
  });
}
