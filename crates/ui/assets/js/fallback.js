// A classic script, run even when a module fails to load or parse: if the application has not
// started after a few seconds, say so instead of leaving a blank page.
'use strict';
window.setTimeout(function () {
  if (window.caravanStarted) return;
  var main = document.getElementById('main');
  var box = document.createElement('div');
  box.className = 'message error';
  box.setAttribute('role', 'alert');
  box.textContent = 'The Caravan UI could not start: one of its scripts failed to load. '
    + 'Reload the page; if this persists, the browser console says which script failed. '
    + 'The API still works: /api/v1/openapi.json describes it.';
  main.replaceChildren(box);
}, 4000);
