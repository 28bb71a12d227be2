/*!
 * RIFT elements: browser helpers for DevRift.Hsm integrations. No dependencies, one global: window.RiftElements.
 *
 * Your page never talks to the appliance with a secret key. It talks to YOUR backend, which calls the
 * appliance's /v1 API with its sk_test_/sk_live_ key and relays the JSON:
 *   - showQrCode(target, qrCodeBase64Png, { alt })    draws an authenticator-app enrolment QR code
 *   - register(creationOptions) / authenticate(requestOptions)
 *         run navigator.credentials.create/get with the appliance's WebAuthn JSON options (object or
 *         string, base64url) and resolve to the credential as JSON (base64url), ready to post back
 *   - registerWithBackend({...}) / authenticateWithBackend({...})
 *         fetch the options from a URL of your backend, run the ceremony, post the credential to another
 */
(function (global) {
  "use strict";

  // ---- base64url <-> ArrayBuffer ----

  function toBase64Url(buffer) {
    var bytes = buffer instanceof ArrayBuffer ? new Uint8Array(buffer) : new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromBase64Url(text, field) {
    if (typeof text !== "string") {
      throw new TypeError("RiftElements: '" + field + "' must be a base64url string");
    }
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4 !== 0) {
      b64 += "=";
    }
    var binary;
    try {
      binary = atob(b64);
    } catch (e) {
      throw new TypeError("RiftElements: '" + field + "' is not base64url");
    }
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  // ---- options JSON -> WebAuthn dictionaries ----

  // In WebAuthn JSON a null member means "absent"; passing it on would turn it into "null" or 0.
  function withoutNulls(value) {
    if (Array.isArray(value)) {
      return value.map(withoutNulls);
    }
    if (value !== null && typeof value === "object") {
      var copy = {};
      Object.keys(value).forEach(function (k) {
        if (value[k] !== null && value[k] !== undefined) {
          copy[k] = withoutNulls(value[k]);
        }
      });
      return copy;
    }
    return value;
  }

  function parseOptions(options) {
    var parsed = typeof options === "string" ? JSON.parse(options) : options;
    if (parsed === null || typeof parsed !== "object") {
      throw new TypeError("RiftElements: options must be a WebAuthn options object or its JSON text");
    }
    // Some servers wrap the dictionary as { publicKey: {...} }.
    if (parsed.publicKey && typeof parsed.publicKey === "object") {
      parsed = parsed.publicKey;
    }
    var copy = withoutNulls(parsed);
    // Fido2 adds bookkeeping members that are no part of the WebAuthn dictionaries.
    delete copy.status;
    delete copy.errorMessage;
    return copy;
  }

  function descriptors(list, field) {
    return (list || []).map(function (d, i) {
      var copy = Object.assign({}, d);
      copy.id = fromBase64Url(d.id, field + "[" + i + "].id");
      return copy;
    });
  }

  function toCreationOptions(options) {
    var o = parseOptions(options);
    if (!o.challenge || !o.user || !o.rp) {
      throw new TypeError("RiftElements: creation options need rp, user and challenge");
    }
    o.challenge = fromBase64Url(o.challenge, "challenge");
    o.user = Object.assign({}, o.user, { id: fromBase64Url(o.user.id, "user.id") });
    o.excludeCredentials = descriptors(o.excludeCredentials, "excludeCredentials");
    return o;
  }

  function toRequestOptions(options) {
    var o = parseOptions(options);
    if (!o.challenge) {
      throw new TypeError("RiftElements: request options need a challenge");
    }
    o.challenge = fromBase64Url(o.challenge, "challenge");
    o.allowCredentials = descriptors(o.allowCredentials, "allowCredentials");
    return o;
  }

  // ---- PublicKeyCredential -> JSON ----

  function credentialToJSON(credential) {
    if (!credential || !credential.response || !credential.rawId) {
      throw new TypeError("RiftElements: not a PublicKeyCredential");
    }
    var r = credential.response;
    var response = { clientDataJSON: toBase64Url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64Url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64Url(r.authenticatorData);
      response.signature = toBase64Url(r.signature);
      if (r.userHandle && r.userHandle.byteLength > 0) {
        response.userHandle = toBase64Url(r.userHandle);
      }
    }
    var json = {
      id: credential.id,
      rawId: toBase64Url(credential.rawId),
      type: credential.type,
      response: response,
      clientExtensionResults: typeof credential.getClientExtensionResults === "function" ? credential.getClientExtensionResults() : {},
    };
    if (credential.authenticatorAttachment) {
      json.authenticatorAttachment = credential.authenticatorAttachment;
    }
    return json;
  }

  // ---- ceremonies ----

  function isSupported() {
    return !!(global.PublicKeyCredential && global.navigator && global.navigator.credentials);
  }

  function requireSupport() {
    if (!isSupported()) {
      throw failure("ceremony", "this browser does not support WebAuthn (or the page is not a secure context)");
    }
  }

  function register(options, ceremony) {
    return Promise.resolve().then(function () {
      requireSupport();
      var init = { publicKey: toCreationOptions(options) };
      if (ceremony && ceremony.signal) {
        init.signal = ceremony.signal;
      }
      return global.navigator.credentials.create(init);
    }).then(credentialToJSON);
  }

  function authenticate(options, ceremony) {
    return Promise.resolve().then(function () {
      requireSupport();
      var init = { publicKey: toRequestOptions(options) };
      if (ceremony && ceremony.signal) {
        init.signal = ceremony.signal;
      }
      if (ceremony && ceremony.mediation) {
        init.mediation = ceremony.mediation;
      }
      return global.navigator.credentials.get(init);
    }).then(credentialToJSON);
  }

  // ---- talking to the integrator's backend ----

  function failure(stage, message, status, body) {
    var error = new Error("RiftElements: " + message);
    error.name = "RiftElementsError";
    error.stage = stage;
    if (status !== undefined) {
      error.status = status;
    }
    if (body !== undefined) {
      error.body = body;
    }
    return error;
  }

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

  function post(url, body, settings) {
    var headers = Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, settings.headers || {});
    return global.fetch(url, {
      method: "POST",
      headers: headers,
      body: JSON.stringify(body),
      credentials: settings.credentials || "same-origin",
      cache: "no-store",
    }).then(function (response) {
      return readBody(response).then(function (parsed) {
        return { ok: response.ok, status: response.status, body: parsed };
      });
    });
  }

  function withBackend(ceremony, settings) {
    if (!settings || typeof settings.optionsUrl !== "string" || typeof settings.resultUrl !== "string") {
      return Promise.reject(new TypeError("RiftElements: optionsUrl and resultUrl are required"));
    }
    var body = settings.body || {};
    var resultBody = settings.resultBody || body;
    var field = settings.credentialField || "credential";
    return post(settings.optionsUrl, body, settings).then(function (options) {
      if (!options.ok) {
        throw failure("options", "the options request failed with HTTP " + options.status, options.status, options.body);
      }
      return ceremony(options.body, settings);
    }).then(function (credential) {
      var payload = Object.assign({}, resultBody);
      payload[field] = credential;
      return post(settings.resultUrl, payload, settings);
    });
  }

  /**
   * POSTs settings.body (JSON) to settings.optionsUrl, runs navigator.credentials.create with the answer, POSTs
   * { ...(settings.resultBody || settings.body), credential } to settings.resultUrl. Resolves to
   * { ok, status, body } of that last request; rejects with error.stage "options" or "ceremony" before it.
   * Optional: headers, credentials (fetch mode, default "same-origin"), credentialField, signal.
   */
  function registerWithBackend(settings) {
    return withBackend(function (options, s) {
      return register(options, s).catch(asCeremonyFailure);
    }, settings);
  }

  function authenticateWithBackend(settings) {
    return withBackend(function (options, s) {
      return authenticate(options, s).catch(asCeremonyFailure);
    }, settings);
  }

  function asCeremonyFailure(e) {
    if (e && e.name === "RiftElementsError") {
      throw e;
    }
    var error = failure("ceremony", (e && e.name ? e.name + ": " : "") + (e && e.message ? e.message : String(e)));
    error.cause = e;
    throw error;
  }

  // ---- authenticator-app enrolment QR code ----

  /**
   * Shows the enrolment QR code (the base64 PNG of POST /v1/mfa/app's qr_code) in target (an element or a CSS
   * selector), replacing its content. Resolves to the <img> once decoded. Needs img-src data: in your CSP.
   */
  function showQrCode(target, qrCodeBase64Png, display) {
    var element = typeof target === "string" ? global.document.querySelector(target) : target;
    if (!element || typeof element.appendChild !== "function") {
      return Promise.reject(new TypeError("RiftElements: showQrCode needs a target element"));
    }
    if (typeof qrCodeBase64Png !== "string" || !/^[A-Za-z0-9+/]+={0,2}$/.test(qrCodeBase64Png)) {
      return Promise.reject(new TypeError("RiftElements: qr_code must be base64 PNG data"));
    }
    var settings = display || {};
    var img = global.document.createElement("img");
    img.alt = settings.alt || "QR code to scan with your authenticator app";
    img.className = settings.className || "rift-qr-code";
    if (settings.size) {
      img.width = settings.size;
      img.height = settings.size;
    }
    // Crisp modules when the browser scales the picture.
    img.style.imageRendering = "pixelated";
    var loaded = new Promise(function (resolve, reject) {
      img.onload = function () { resolve(img); };
      img.onerror = function () { reject(new TypeError("RiftElements: qr_code is not a PNG the browser can show")); };
    });
    img.src = "data:image/png;base64," + qrCodeBase64Png;
    while (element.firstChild) {
      element.removeChild(element.firstChild);
    }
    element.appendChild(img);
    return loaded;
  }

  global.RiftElements = Object.freeze({
    version: "1.0.0",
    isSupported: isSupported,
    showQrCode: showQrCode,
    toCreationOptions: toCreationOptions,
    toRequestOptions: toRequestOptions,
    credentialToJSON: credentialToJSON,
    register: register,
    authenticate: authenticate,
    registerWithBackend: registerWithBackend,
    authenticateWithBackend: authenticateWithBackend,
    base64url: Object.freeze({ encode: toBase64Url, decode: function (text) { return fromBase64Url(text, "value"); } }),
  });
})(window);
