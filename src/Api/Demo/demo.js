// The /demo page: every verification method against this appliance's /v1 API with a test key.
// The key lives only in the password field and in the Authorization header of same-origin requests:
// it is never stored, logged, put in a URL or shown.
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var TEST_KEY = /^sk_test_[A-Za-z0-9_-]+$/;

  function RefusedKey(message) {
    this.message = message;
  }

  // ---- inputs ----

  function testKey() {
    var key = $("key").value.trim();
    if (!TEST_KEY.test(key)) {
      throw new RefusedKey(key.length === 0
        ? "Enter a test secret key (sk_test_…) first. Nothing was sent."
        : "Refused: only test keys (sk_test_…) can be used on this page. Nothing was sent.");
    }
    return key;
  }

  function email() { return $("email").value.trim(); }

  function phone() { return $("phone").value.trim(); }

  // The User value for a channel: EMAIL the email, SMS the phone, DUAL "email:phone".
  function userFor(type) {
    if (type === "SMS") {
      return phone();
    }
    if (type === "DUAL") {
      return email() + ":" + phone();
    }
    return email();
  }

  // ---- the result area ----

  function showPending(action, what) {
    var result = $("result");
    result.dataset.action = action;
    result.dataset.status = "pending";
    delete result.dataset.ok;
    delete result.dataset.code;
    result.textContent = what + " …";
    $("result-body").textContent = "";
  }

  function showResponse(action, what, status, body) {
    var result = $("result");
    var ok = status >= 200 && status < 300;
    var code = body && typeof body === "object" && typeof body.code === "string" ? body.code : "";
    result.dataset.action = action;
    result.dataset.status = String(status);
    result.dataset.ok = String(ok);
    if (code) {
      result.dataset.code = code;
    } else {
      delete result.dataset.code;
    }
    var text = what + ": HTTP " + status + (ok ? " (success)" : "");
    if (code) {
      text += ", problem code " + code;
    }
    if (!ok && body && body.detail) {
      text += ": " + body.detail;
    }
    result.textContent = text;
    $("result-body").textContent = body === null || body === undefined ? "" : JSON.stringify(redacted(body), null, 2);
  }

  function showFailure(action, what, status, message) {
    var result = $("result");
    result.dataset.action = action;
    result.dataset.status = status;
    result.dataset.ok = "false";
    delete result.dataset.code;
    result.textContent = what + ": " + message;
    $("result-body").textContent = "";
  }

  // The enrolment's picture is shown as a picture, not as 2 KB of base64.
  function redacted(body) {
    if (body && typeof body === "object" && typeof body.qr_code === "string") {
      var copy = Object.assign({}, body);
      copy.qr_code = "(shown as an image)";
      return copy;
    }
    return body;
  }

  // ---- talking to /v1 ----

  function readBody(response) {
    return response.text().then(function (text) {
      if (!text) {
        return null;
      }
      try {
        return JSON.parse(text);
      } catch (e) {
        return text;
      }
    });
  }

  function call(method, path, body) {
    var key = testKey();
    var init = {
      method: method,
      headers: { Authorization: "Bearer " + key, Accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (response) {
      return readBody(response).then(function (parsed) {
        return { status: response.status, body: parsed };
      });
    });
  }

  var clicks = 0;

  // Runs one button's work: refuses a non-test key before anything is sent, shows the outcome.
  function action(buttonId, what, work) {
    var button = $(buttonId);
    button.addEventListener("click", function () {
      // Each click gets a number, so a reader (or a test) can tell this outcome from the previous one.
      $("result").dataset.seq = String(++clicks);
      try {
        testKey();
      } catch (e) {
        showFailure(buttonId, what, "refused", e.message);
        return;
      }
      button.disabled = true;
      showPending(buttonId, what);
      Promise.resolve()
        .then(work)
        .then(function (r) { showResponse(buttonId, what, r.status, r.body); return r; })
        .catch(function (e) {
          if (e instanceof RefusedKey) {
            showFailure(buttonId, what, "refused", e.message);
          } else if (e && e.name === "RiftElementsError" && e.status !== undefined) {
            showResponse(buttonId, what + " (" + e.stage + ")", e.status, e.body);
          } else if (e && e.name === "RiftElementsError") {
            showFailure(buttonId, what, "ceremony-failed", e.message);
          } else {
            showFailure(buttonId, what, "network-error", e && e.message ? e.message : String(e));
          }
        })
        .then(function () { button.disabled = false; });
    });
  }

  // ---- the test outbox ----

  var outboxUser = null;

  function loadOutbox(user) {
    outboxUser = user;
    $("outbox-user").textContent = user;
    return call("GET", "/v1/test/messages?user=" + encodeURIComponent(user)).then(function (r) {
      var list = $("outbox");
      while (list.firstChild) {
        list.removeChild(list.firstChild);
      }
      var messages = r.status === 200 && r.body && Array.isArray(r.body.data) ? r.body.data : [];
      messages.forEach(function (m) {
        var item = document.createElement("li");
        item.className = "message";
        item.dataset.channel = m.channel;
        var head = document.createElement("div");
        head.textContent = m.channel + " to " + m.to + " at " + m.created_at;
        var text = document.createElement("pre");
        text.className = "message-body";
        text.textContent = (m.subject ? m.subject + "\n\n" : "") + m.body;
        item.appendChild(head);
        item.appendChild(text);
        list.appendChild(item);
      });
      if (messages.length === 0) {
        var none = document.createElement("li");
        none.textContent = r.status === 200 ? "No messages yet." : "Could not read the outbox (HTTP " + r.status + ").";
        list.appendChild(none);
      }
      return r;
    });
  }

  // A successful send is followed by the outbox, so the code can be read; the result stays the send's.
  function thenOutbox(user) {
    return function (r) {
      if (r.status >= 200 && r.status < 300) {
        return loadOutbox(user).then(function () { return r; });
      }
      return r;
    };
  }

  // ---- wiring ----

  function init() {
    $("key").addEventListener("input", function () {
      var value = $("key").value.trim();
      var hint = $("key-hint");
      var bad = value.length > 0 && !TEST_KEY.test(value);
      hint.classList.toggle("bad", bad);
      hint.textContent = bad
        ? "This is not a test key (sk_test_…): it will not be sent."
        : "Only keys starting with sk_test_ are accepted.";
    });

    action("send-code", "Send code", function () {
      var type = $("code-type").value;
      var user = userFor(type);
      return call("POST", "/v1/mfa", { user: user, type: type }).then(thenOutbox(user));
    });

    action("verify-code", "Verify code", function () {
      var type = $("code-type").value;
      return call("POST", "/v1/mfa/verify", { user: userFor(type), type: type === "SMS" ? "PHONE" : type, code: $("code").value.trim() });
    });

    action("refresh-outbox", "Read test outbox", function () {
      return loadOutbox(outboxUser || userFor($("code-type").value));
    });

    action("enrol-app", "Enrol authenticator app", function () {
      return call("POST", "/v1/mfa/app", { user: email() }).then(function (r) {
        if (r.status !== 200) {
          return r;
        }
        $("app-secret").textContent = r.body.secret;
        $("app-secret-line").hidden = false;
        return RiftElements.showQrCode($("qr"), r.body.qr_code, { alt: "QR code to add " + email() + " to your authenticator app" })
          .then(function () { return r; });
      });
    });

    action("verify-app", "Confirm app code", function () {
      return call("POST", "/v1/mfa/verify", { user: email(), type: "APP", code: $("app-code").value.trim() });
    });

    action("register-key", "Register security key", function () {
      return RiftElements.registerWithBackend({
        optionsUrl: "/v1/mfa/keys/registration/options",
        resultUrl: "/v1/mfa/keys/registration",
        body: { user: email() },
        headers: { Authorization: "Bearer " + testKey() },
        credentials: "omit",
      });
    });

    action("verify-key", "Verify with security key", function () {
      return RiftElements.authenticateWithBackend({
        optionsUrl: "/v1/mfa/keys/assertion/options",
        resultUrl: "/v1/mfa/verify",
        body: { user: email() },
        resultBody: { user: email(), type: "KEY" },
        headers: { Authorization: "Bearer " + testKey() },
        credentials: "omit",
      });
    });

    action("generate-backup", "Generate backup codes", function () {
      var type = $("backup-type").value;
      var user = userFor(type);
      return call("POST", "/v1/mfa/backup", { user: user, type: type }).then(thenOutbox(user));
    });

    action("verify-backup", "Verify backup code", function () {
      return call("POST", "/v1/mfa/verify", { user: userFor($("backup-type").value), type: "BACKUP", code: $("backup-code").value.trim() });
    });

    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
