// The console's only script: live updates, and this phone's door key.
//
// Live: one EventSource per page on /console/live; each change name N
// becomes the htmx event "live:N" on <body>, on which fragments fetch
// themselves again (hx-trigger="live:N from:body").
//
// Door key: a non-extractable Ed25519 key made by WebCrypto, kept in
// IndexedDB ("pickup-console" / "keys", by account name). Only its public
// half leaves the phone (unpadded base64url of the raw 32 bytes, the
// protocol's form). A command is signed over its canonical JSON: keys sorted
// by code point at every level, no spaces, raw UTF-8 (docs/protocol.md,
// "Signatures"), exactly as protocol.canonical.canonical_json does.
(function () {
  "use strict";
  var body = document.body;

  // ----- live updates ------------------------------------------------------
  var liveUrl = body.getAttribute("data-live");
  if (liveUrl && window.EventSource) {
    var source = new EventSource(liveUrl);
    window.pickupLive = source; // its readyState tells the tests (and a curious owner) it is live
    source.addEventListener("change", function (e) {
      if (!window.htmx) return;
      String(e.data).split(" ").forEach(function (name) {
        if (name) window.htmx.trigger(body, "live:" + name);
      });
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  // ----- canonical JSON and base64url --------------------------------------
  function codePoints(s) { return Array.from(s).map(function (c) { return c.codePointAt(0); }); }
  function compareKeys(a, b) {
    var x = codePoints(a), y = codePoints(b);
    for (var i = 0; i < Math.min(x.length, y.length); i++) {
      if (x[i] !== y[i]) return x[i] - y[i];
    }
    return x.length - y.length;
  }
  function canonical(value) {
    if (value === null || typeof value !== "object") return JSON.stringify(value);
    if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
    return "{" + Object.keys(value).sort(compareKeys).map(function (k) {
      return JSON.stringify(k) + ":" + canonical(value[k]);
    }).join(",") + "}";
  }
  function b64url(bytes) {
    var s = "";
    new Uint8Array(bytes).forEach(function (b) { s += String.fromCharCode(b); });
    return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  window.pickupCanonical = canonical; // for the tests, which compare it with the hub's

  // ----- the key store -------------------------------------------------------
  var ALG = { name: "Ed25519" };
  function db() {
    return new Promise(function (resolve, reject) {
      var req = indexedDB.open("pickup-console", 1);
      req.onupgradeneeded = function () { req.result.createObjectStore("keys"); };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }
  function keyOp(mode, fn) {
    return db().then(function (d) {
      return new Promise(function (resolve, reject) {
        var tx = d.transaction("keys", mode);
        var req = fn(tx.objectStore("keys"));
        tx.oncomplete = function () { resolve(req.result); };
        tx.onerror = function () { reject(tx.error); };
      });
    });
  }
  function loadKey(account) { return keyOp("readonly", function (s) { return s.get(account); }); }
  function saveKey(account, pair) { return keyOp("readwrite", function (s) { return s.put(pair, account); }); }
  function publicText(pair) {
    return crypto.subtle.exportKey("raw", pair.publicKey).then(b64url);
  }
  function keyId(text) {
    var raw = Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), function (c) { return c.charCodeAt(0); });
    return crypto.subtle.digest("SHA-256", raw).then(function (h) {
      return Array.from(new Uint8Array(h)).map(function (b) { return ("0" + b.toString(16)).slice(-2); }).join("").slice(0, 16);
    });
  }
  function supported() {
    if (!window.isSecureContext || !window.crypto || !crypto.subtle || !window.indexedDB) {
      return Promise.resolve(false);
    }
    return crypto.subtle.generateKey(ALG, false, ["sign", "verify"]).then(
      function () { return true; }, function () { return false; });
  }

  // ----- the account page: make and register this phone's key ---------------
  var here = document.getElementById("key-here");
  var make = document.getElementById("make-key");
  if (here && make) {
    var account = here.getAttribute("data-account");
    supported().then(function (ok) {
      if (!ok) { here.textContent = here.getAttribute("data-nocrypto"); return null; }
      return loadKey(account).then(function (pair) {
        if (!pair) { here.textContent = here.getAttribute("data-none"); make.disabled = false; return; }
        return publicText(pair).then(keyId).then(function (kid) {
          here.textContent = here.getAttribute("data-has").replace("{key_id}", kid);
          here.setAttribute("data-key-id", kid);
          make.disabled = false;
        });
      });
    });
    make.addEventListener("click", function () {
      make.disabled = true;
      crypto.subtle.generateKey(ALG, false, ["sign", "verify"]).then(function (pair) {
        return saveKey(account, pair).then(function () { return publicText(pair); });
      }).then(function (text) {
        document.getElementById("public-key").value = text;
        document.getElementById("key-label").value = (navigator.userAgent.match(/\(([^)]*)\)/) || ["", "browser"])[1].slice(0, 60);
        document.getElementById("key-form").submit();
      }).catch(function (err) {
        here.textContent = here.getAttribute("data-nocrypto") + " (" + err + ")";
      });
    });
  }

  // ----- the confirmation page: sign the command -----------------------------
  var signer = document.getElementById("signer");
  var button = document.getElementById("sign-button");
  if (signer && button) {
    var status = document.getElementById("sign-status");
    var doc = JSON.parse(signer.getAttribute("data-doc"));
    var who = signer.getAttribute("data-account");
    supported().then(function (ok) {
      if (!ok) { status.textContent = status.getAttribute("data-nocrypto"); return; }
      loadKey(who).then(function (pair) {
        if (!pair) { status.textContent = status.getAttribute("data-nokey"); return; }
        status.textContent = "";
        button.disabled = false;
        button.addEventListener("click", function () {
          button.disabled = true;
          var bytes = new TextEncoder().encode(canonical(doc));
          crypto.subtle.sign(ALG, pair.privateKey, bytes).then(function (sig) {
            document.getElementById("sig").value = b64url(sig);
            document.getElementById("sign-form").submit();
          }).catch(function (err) {
            status.textContent = status.getAttribute("data-failed") + " (" + err + ")";
            button.disabled = false;
          });
        });
      });
    });
  }
})();
