// Progressive enhancement only: every page works without it. On the "approve on your phone" page,
// polls the server and continues by itself once the phone has answered.
(function () {
  'use strict';
  var box = document.querySelector('[data-push-wait]');
  if (!box) return;
  var url = box.getAttribute('data-push-wait');
  var status = document.getElementById('push-status');
  var form = document.getElementById('push-complete');
  var number = document.getElementById('number');
  var done = false;
  function poll() {
    if (done) return;
    fetch(url, { credentials: 'same-origin', cache: 'no-store' })
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state === 'waiting') { setTimeout(poll, 1000); return; }
        done = true;
        if (s.approved && s.number_required) {
          status.textContent = 'Approved on your phone. Type the number the app shows, then continue.';
          if (number) number.focus();
          return;
        }
        form.submit();
      })
      .catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 1000);
})();
