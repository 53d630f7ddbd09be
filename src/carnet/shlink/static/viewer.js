// Carnet's SMART Health Links viewer (HL7 SMART Health Links specification): reads the "#shlink:/..." fragment,
// asks for the manifest (or, with the U flag, the single file), decrypts each file in the browser with WebCrypto
// (compact JWE, alg "dir", enc "A256GCM", the protected header as additional data) and shows the FHIR content as
// text. Nothing here uses innerHTML: content is written with textContent only.
"use strict";

const FR = {
  title: "Informations de santé partagées", recipient: "Votre nom et votre structure (montrés au patient)",
  passcode: "Code secret (le patient vous le donne)", open: "Ouvrir",
  footer: "Déchiffré dans votre navigateur : la clé du lien n'atteint jamais le serveur. Chaque ouverture est montrée au patient.",
  noLink: "Ce lien est incomplet : il doit contenir #shlink:/…", badLink: "Ce lien n'est pas un SMART Health Link valide.",
  expires: "Expire le ", expired: "Ce lien a expiré.", opening: "Ouverture…", gone: "Ce lien n'est plus actif (révoqué, expiré ou déjà utilisé).",
  wrong: "Code secret incorrect. Essais restants : ", tooMany: "Trop de demandes : réessayez dans une minute.",
  failed: "Le lien n'a pas pu être ouvert.", decrypt: "Un fichier n'a pas pu être déchiffré.",
  patient: "Patient", born: "né(e) le ", contacts: "Personnes à prévenir", document: "Document",
  download: "Télécharger le document", from: "Partagé depuis ", nothing: "Aucune information", newer: "Ce lien demande une version plus récente du protocole.",
};
const EN = {
  title: "Shared health information", recipient: "Your name and organisation (shown to the patient)",
  passcode: "Passcode (the patient gives it to you)", open: "Open",
  footer: "Decrypted in your browser: the key in the link never reaches the server. Every opening is shown to the patient.",
  noLink: "This link is incomplete: it must contain #shlink:/…", badLink: "This is not a valid SMART Health Link.",
  expires: "Expires ", expired: "This link has expired.", opening: "Opening…", gone: "This link is no longer active (revoked, expired or already used).",
  wrong: "Wrong passcode. Attempts left: ", tooMany: "Too many requests: try again in a minute.",
  failed: "The link could not be opened.", decrypt: "A file could not be decrypted.",
  patient: "Patient", born: "born ", contacts: "Emergency contacts", document: "Document",
  download: "Download the document", from: "Shared from ", nothing: "No information", newer: "This link needs a newer version of the protocol.",
};
const T = (navigator.language || "en").toLowerCase().startsWith("fr") ? FR : EN;
const $ = (id) => document.getElementById(id);
const SAFE_TYPES = ["application/pdf", "image/jpeg", "image/png", "text/plain"];

function b64urlBytes(text) {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("base64url");
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function parseLink() {
  const hash = decodeURIComponent(window.location.hash || "");
  const at = hash.indexOf("shlink:/");
  if (at < 0) return null;
  const payload = JSON.parse(new TextDecoder().decode(b64urlBytes(hash.slice(at + 8))));
  if (typeof payload.url !== "string" || typeof payload.key !== "string" || payload.key.length !== 43) {
    throw new Error("payload");
  }
  return payload;
}

async function decryptJwe(token, keyBytes) {
  const parts = token.trim().split(".");
  if (parts.length !== 5 || parts[1] !== "") throw new Error("jwe");
  const header = JSON.parse(new TextDecoder().decode(b64urlBytes(parts[0])));
  if (header.alg !== "dir" || header.enc !== "A256GCM") throw new Error("alg");
  const iv = b64urlBytes(parts[2]);
  const ct = b64urlBytes(parts[3]);
  const tag = b64urlBytes(parts[4]);
  const data = new Uint8Array(ct.length + tag.length);
  data.set(ct);
  data.set(tag, ct.length);
  const key = await crypto.subtle.importKey("raw", keyBytes, { name: "AES-GCM" }, false, ["decrypt"]);
  let plain = new Uint8Array(await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: iv, additionalData: new TextEncoder().encode(parts[0]), tagLength: 128 }, key, data));
  if (header.zip === "DEF") {
    const stream = new Blob([plain]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
    plain = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  return { header: header, text: new TextDecoder().decode(plain) };
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function narrativeLines(div) {
  if (!div) return [];
  const doc = new DOMParser().parseFromString(div, "text/html");  // inert: nothing of it is inserted
  const items = Array.from(doc.querySelectorAll("li, tr, p")).map((n) => n.textContent.trim()).filter(Boolean);
  return items.length ? items : [doc.body.textContent.trim()].filter(Boolean);
}

function showPatient(p, into) {
  const s = el("section", null, "patient");
  s.appendChild(el("h2", T.patient));
  const name = (p.name || []).map((n) => [(n.given || []).join(" "), n.family].filter(Boolean).join(" ")).join(" / ");
  s.appendChild(el("p", [name, p.birthDate ? T.born + p.birthDate : "", p.gender || ""].filter(Boolean).join(" — ")));
  const contacts = (p.contact || []).map((c) => [c.name && (c.name.text || [(c.name.given || []).join(" "), c.name.family].join(" ")),
    ...(c.telecom || []).map((t) => t.value)].filter(Boolean).join(" · ")).filter(Boolean);
  if (contacts.length) {
    s.appendChild(el("h3", T.contacts));
    const ul = el("ul");
    contacts.forEach((c) => ul.appendChild(el("li", c)));
    s.appendChild(ul);
  }
  into.appendChild(s);
}

function showBundle(bundle, into) {
  const resources = (bundle.entry || []).map((e) => e.resource || {});
  const patient = resources.find((r) => r.resourceType === "Patient");
  if (patient) showPatient(patient, into);
  const composition = resources.find((r) => r.resourceType === "Composition");
  if (!composition) return;
  const s = el("section");
  s.appendChild(el("h2", composition.title || "Patient summary"));
  (composition.section || []).forEach((sec) => {
    s.appendChild(el("h3", sec.title || ""));
    const lines = narrativeLines(sec.text && sec.text.div);
    const ul = el("ul");
    (lines.length ? lines : [T.nothing]).forEach((l) => ul.appendChild(el("li", l)));
    s.appendChild(ul);
  });
  into.appendChild(s);
}

function showDocument(doc, into) {
  const s = el("section");
  const att = ((doc.content || [])[0] || {}).attachment || {};
  s.appendChild(el("h2", doc.description || att.title || (((doc.type || {}).coding || [])[0] || {}).display || T.document));
  if (doc.date) s.appendChild(el("p", doc.date.slice(0, 10), "muted"));
  if (att.data) {
    const bytes = Uint8Array.from(atob(att.data), (c) => c.charCodeAt(0));
    // only inert types keep theirs: anything else (HTML, SVG, scripts) is handed over as bytes to save
    const type = SAFE_TYPES.includes(att.contentType) ? att.contentType : "application/octet-stream";
    if (type.startsWith("text/")) {
      s.appendChild(el("pre", new TextDecoder().decode(bytes)));
    }
    const a = el("a", T.download);
    a.href = URL.createObjectURL(new Blob([bytes], { type: type }));
    a.download = att.title || "document";
    s.appendChild(a);
  }
  into.appendChild(s);
}

function show(resource, into) {
  if (resource.resourceType === "Bundle") showBundle(resource, into);
  else if (resource.resourceType === "DocumentReference") showDocument(resource, into);
  else into.appendChild(el("pre", JSON.stringify(resource, null, 2)));
}

async function open(link, key) {
  const status = $("status");
  status.className = "";
  status.textContent = T.opening;
  const recipient = $("recipient").value.trim();
  let files;
  if ((link.flag || "").includes("U")) {
    const r = await fetch(link.url + (link.url.includes("?") ? "&" : "?") + "recipient=" + encodeURIComponent(recipient));
    if (!r.ok) throw new Error(r.status === 404 ? T.gone : T.failed);
    files = [{ embedded: await r.text() }];
  } else {
    const body = { recipient: recipient };
    if ((link.flag || "").includes("P")) body.passcode = $("passcode").value;
    const r = await fetch(link.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    if (r.status === 401) {
      const j = await r.json();
      throw new Error(T.wrong + j.remainingAttempts);
    }
    if (r.status === 404) throw new Error(T.gone);
    if (r.status === 429) throw new Error(T.tooMany);
    if (!r.ok) throw new Error(T.failed);
    files = (await r.json()).files || [];
  }
  const content = $("content");
  content.textContent = "";
  for (const f of files) {
    let token = f.embedded;
    if (!token && f.location) {
      const r = await fetch(f.location);
      if (!r.ok) throw new Error(T.failed);
      token = await r.text();
    }
    let opened;
    try {
      opened = await decryptJwe(token, key);
    } catch (e) {
      throw new Error(T.decrypt);
    }
    show(JSON.parse(opened.text), content);
  }
  $("open").hidden = true;
  status.textContent = "";
}

function start() {
  document.documentElement.lang = T === FR ? "fr" : "en";
  document.querySelectorAll("[data-t]").forEach((n) => { n.textContent = T[n.dataset.t]; });
  const status = $("status");
  let link;
  try {
    link = parseLink();
  } catch (e) {
    status.textContent = T.badLink;
    status.className = "error";
    return;
  }
  if (!link) {
    status.textContent = T.noLink;
    status.className = "error";
    return;
  }
  if (link.v && link.v > 1) {
    status.textContent = T.newer;
    status.className = "error";
    return;
  }
  if (link.label) $("label").textContent = link.label;
  try {
    $("source").textContent = T.from + new URL(link.url).host;
  } catch (e) {
    status.textContent = T.badLink;
    status.className = "error";
    return;
  }
  if (link.exp) {
    const when = new Date(link.exp * 1000);
    $("expiry").textContent = when < new Date() ? T.expired : T.expires + when.toLocaleString();
  }
  const key = b64urlBytes(link.key);
  $("passcode-row").hidden = !(link.flag || "").includes("P");
  $("passcode").required = !(link.flag || "").includes("P") ? false : true;
  const form = $("open");
  form.hidden = false;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    open(link, key).catch((e) => {
      status.textContent = e.message || T.failed;
      status.className = "error";
    });
  });
}

document.addEventListener("DOMContentLoaded", start);
