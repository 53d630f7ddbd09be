// Carnet's teleconsultation room (issue 12 §1, docs/TELECONSULTATION.md), for both portals.
// Video and sound go peer to peer (WebRTC); this script only talks to Carnet over the signalling socket named by the
// page (data-socket), which is bound to the signed-in session and to this visit. The professional's browser makes
// the offer; the patient's answers. A document either side shows is fetched from Carnet by this browser with its own
// session (an audited read, served no-store), never received over the socket; it is dropped when the visit ends.
// No inline script, no third-party code: served from /portal/static under the portals' strict CSP.
(function () {
  "use strict";
  var root = document.getElementById("teleconsult");
  if (!root) { return; }
  var side = root.dataset.side;
  var msg = function (name) { return root.dataset["msg" + name.charAt(0).toUpperCase() + name.slice(1)] || ""; };
  var statusLine = document.getElementById("room-status");
  var errorLine = document.getElementById("room-error");
  var localVideo = document.getElementById("local-video");
  var remoteVideo = document.getElementById("remote-video");
  var shared = document.getElementById("shared");
  var sharedView = document.getElementById("shared-view");
  var ws = null, pc = null, stream = null, iceServers = [], pending = [], ended = false, attempts = 0;
  var current = null;  // what both screens show: {document, by, page, content_type, title}
  var textPages = null;  // a text document, cut into pages of TEXT_LINES lines
  var TEXT_LINES = 40;

  function say(text) { statusLine.textContent = text; }
  function fail(text) { errorLine.textContent = text; errorLine.hidden = !text; }
  function send(message) { if (ws && ws.readyState === 1) { ws.send(JSON.stringify(message)); } }

  function peer() {
    if (pc) { pc.onicecandidate = null; pc.ontrack = null; pc.onconnectionstatechange = null; pc.close(); }
    pending = [];
    pc = new RTCPeerConnection({ iceServers: iceServers });
    if (stream) { stream.getTracks().forEach(function (t) { pc.addTrack(t, stream); }); }
    pc.onicecandidate = function (e) { if (e.candidate) { send({ type: "ice", candidate: e.candidate.toJSON() }); } };
    pc.ontrack = function (e) { if (remoteVideo.srcObject !== e.streams[0]) { remoteVideo.srcObject = e.streams[0]; } };
    pc.onconnectionstatechange = function () {
      root.dataset.connection = pc.connectionState;
      if (pc.connectionState === "connected") { say(msg("connected")); }
    };
    return pc;
  }

  function flush() {
    var list = pending; pending = [];
    list.forEach(function (c) { pc.addIceCandidate(c).catch(function () {}); });
  }

  function offer() {
    say(msg("connecting"));
    var p = peer();
    p.createOffer().then(function (o) { return p.setLocalDescription(o); })
      .then(function () { send({ type: "offer", sdp: p.localDescription.sdp }); });
  }

  function onOffer(sdp) {
    say(msg("connecting"));
    var p = peer();
    p.setRemoteDescription({ type: "offer", sdp: sdp })
      .then(function () { flush(); return p.createAnswer(); })
      .then(function (a) { return p.setLocalDescription(a); })
      .then(function () { send({ type: "answer", sdp: p.localDescription.sdp }); });
  }

  // --- the document both screens show -------------------------------------------------------------------------
  function clearShown() {
    current = null; textPages = null;
    while (sharedView.firstChild) { sharedView.removeChild(sharedView.firstChild); }
    shared.hidden = true;
    delete shared.dataset.document;
    delete shared.dataset.loaded;
  }

  function renderPage() {
    var page = current.page || 1;
    document.getElementById("page-number").textContent = msg("page") + " " + page +
      (textPages ? " / " + textPages.length : "");
    var frame = sharedView.querySelector("iframe");
    if (frame) { frame.src = root.dataset.fileBase + current.document + "/file#page=" + page; }
    var pre = sharedView.querySelector("pre");
    if (pre && textPages) { pre.textContent = textPages[Math.min(page, textPages.length) - 1] || ""; }
    shared.dataset.page = String(page);
  }

  function showShown(next) {
    if (!next) { clearShown(); return; }
    var same = current && current.document === next.document;
    current = next;
    if (same) { renderPage(); return; }
    while (sharedView.firstChild) { sharedView.removeChild(sharedView.firstChild); }
    textPages = null;
    var url = root.dataset.fileBase + next.document + "/file";
    document.getElementById("shared-title").textContent = next.title || "";
    document.getElementById("shared-by").textContent = next.by === side ? msg("shownByMe") : msg("shownByOther");
    shared.hidden = false;
    delete shared.dataset.loaded;
    shared.dataset.document = next.document;
    if (next.content_type === "application/pdf") {
      var frame = document.createElement("iframe");
      frame.title = next.title || "";
      sharedView.appendChild(frame);
      renderPage();
    } else if (next.content_type.indexOf("image/") === 0) {
      var img = document.createElement("img");
      img.alt = next.title || "";
      img.src = url;
      sharedView.appendChild(img);
      renderPage();
    } else {
      var pre = document.createElement("pre");
      pre.id = "shared-text";
      sharedView.appendChild(pre);
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
        .then(function (text) {
          if (!current || current.document !== next.document) { return; }
          var lines = text.split("\n"), pages = [];
          for (var i = 0; i < lines.length; i += TEXT_LINES) { pages.push(lines.slice(i, i + TEXT_LINES).join("\n")); }
          textPages = pages.length ? pages : [""];
          renderPage();
          shared.dataset.loaded = "1";
          shared.dataset.loadedAt = String(performance.timeOrigin + performance.now());  // benchmarks read it
        })
        .catch(function () { pre.textContent = ""; });
    }
  }

  function turn(delta) {
    if (!current) { return; }
    var page = Math.max(1, (current.page || 1) + delta);
    if (textPages) { page = Math.min(page, textPages.length); }
    send({ type: "page", document: current.document, page: page });
  }

  // --- the signalling socket ----------------------------------------------------------------------------------
  function connect() {
    if (ended) { return; }
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    ws = new WebSocket(scheme + location.host + root.dataset.socket);
    ws.onopen = function () { attempts = 0; fail(""); };
    ws.onmessage = function (e) {
      var m = JSON.parse(e.data);
      if (m.type === "joined") {
        iceServers = m.ice || [];
        root.dataset.joined = "1";
        showShown(m.shown);
        if (side === "clinician" && m.peer) { offer(); } else { say(msg("waiting")); }
      } else if (m.type === "peer-joined") {
        if (side === "clinician") { offer(); }
      } else if (m.type === "peer-left") {
        say(msg("left"));
      } else if (m.type === "offer" && side === "patient") {
        onOffer(m.sdp);
      } else if (m.type === "answer" && side === "clinician" && pc) {
        pc.setRemoteDescription({ type: "answer", sdp: m.sdp }).then(flush);
      } else if (m.type === "ice" && m.candidate) {
        if (pc && pc.remoteDescription) { pc.addIceCandidate(m.candidate).catch(function () {}); }
        else { pending.push(m.candidate); }
      } else if (m.type === "shown") {
        showShown(m.shown);
      } else if (m.type === "error") {
        fail(m.message);
      } else if (m.type === "ended" || m.type === "replaced") {
        finish(msg(m.type));
      }
    };
    ws.onclose = function (e) {
      if (ended) { return; }
      if (e.code === 4403 || e.code === 4404) { finish(msg("refused")); return; }
      if (e.code === 4409) { finish(msg("ended")); return; }
      if (e.code === 4001) { finish(msg("replaced")); return; }
      say(msg("reconnecting"));
      attempts += 1;
      setTimeout(connect, Math.min(10000, 500 * attempts));
    };
  }

  function finish(text) {
    ended = true;
    root.dataset.ended = "1";
    say(text);
    clearShown();  // nothing shown stays on this screen after the visit
    if (pc) { pc.close(); pc = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    remoteVideo.srcObject = null; localVideo.srcObject = null;
    if (ws && ws.readyState <= 1) { ws.close(); }
    document.querySelectorAll(".show-doc, #end-visit").forEach(function (b) { b.disabled = true; });
  }

  document.querySelectorAll(".show-doc").forEach(function (b) {
    b.addEventListener("click", function () { fail(""); send({ type: "show", document: b.dataset.document }); });
  });
  document.getElementById("page-prev").addEventListener("click", function () { turn(-1); });
  document.getElementById("page-next").addEventListener("click", function () { turn(1); });
  document.getElementById("unshow").addEventListener("click", function () { send({ type: "show", document: null }); });
  var endForm = document.getElementById("end-form");
  if (endForm) {
    endForm.addEventListener("submit", function (e) {
      if (ws && ws.readyState === 1) { e.preventDefault(); send({ type: "end" }); }
    });
  }
  window.addEventListener("pagehide", function () { if (ws) { ws.close(); } });

  if (root.dataset.status === "finished" || root.dataset.status === "cancelled") { finish(msg("ended")); return; }
  navigator.mediaDevices.getUserMedia({ video: true, audio: true })
    .then(function (s) { stream = s; localVideo.srcObject = s; })
    .catch(function () { fail(msg("camera")); })
    .then(connect);
}());
