// A whole request of desk model (a), walked in a real headless Chromium against the real
// `guichet serve`, with a real SMTP server on 127.0.0.1 receiving every email: the sponsor
// submits the intake form; the desk, the jurists, the scientific committee and the datalake
// team open the links of their emails and decide; the feasibility committee signs in and
// decides from its inbox; the contract is negotiated, reviewed and signed; the sponsor opens
// the status link of their confirmation email and sees the contract signed.
//
// The same walk runs in French and in English (WALK_LANG=fr or en): every browser asks for
// that language, every page must be in it, the desk's own texts too (the desk is written in
// French with an English translation), and the sponsor's emails (the staff's stay in the
// desk's language, French, as none of them chose another).
//
// Run by `cargo test --test e2e` (tests/e2e.rs), which passes the binary and the browser:
//   GUICHET_BIN=target/debug/guichet CHROMIUM=/usr/bin/chromium SCREENSHOTS=dir WALK_LANG=fr node walk.mjs
// Screenshots of every page are saved in SCREENSHOTS.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import AxeBuilder from "@axe-core/playwright";
import { simpleParser } from "mailparser";
import { chromium } from "playwright-core";
import { SMTPServer } from "smtp-server";

const BIN = process.env.GUICHET_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.SCREENSHOTS || join(tmpdir(), "guichet-e2e-screenshots");
const LANG = process.env.WALK_LANG || "fr";
assert.ok(LANG === "fr" || LANG === "en", `WALK_LANG is fr or en, not ${LANG}`);
const TITLE = "Cohorte diabète 2027";
// What the pages and the sponsor's emails say, in the walk's language.
const SAYS = {
  fr: {
    locale: "fr-FR",
    submitted: "Demande envoyée",
    spent: "Ce lien n'est plus valide",
    asked: "Le guichet attend une réponse de votre part",
    answered: "Votre réponse est enregistrée",
    wrongPassword: "Adresse ou mot de passe incorrect",
    claimedBy: "Prise par",
    sponsorHeading: `Votre demande « ${TITLE} »`,
    signed: "Signature du contrat : Contrat signé",
    intake: ["Résumé scientifique", "Organisme porteur"],
    committee: "Comité de faisabilité",
    moreInformation: "Informations complémentaires",
    received: "est bien reçue",
    indicators: "Indicateurs",
    leadTime: "Délai de traitement",
    history: "Historique",
    sponsor: "porteur de projet",
  },
  en: {
    locale: "en-GB",
    submitted: "Request sent",
    spent: "This link is no longer valid",
    asked: "The desk is waiting for an answer from you",
    answered: "Your answer is recorded",
    wrongPassword: "Wrong address or password",
    claimedBy: "Claimed by",
    sponsorHeading: `Your request “${TITLE}”`,
    signed: "Contract signature: Contract signed",
    intake: ["Scientific summary", "Sponsoring organisation"],
    committee: "Feasibility committee",
    moreInformation: "More information needed",
    received: "has been received",
    indicators: "Indicators",
    leadTime: "Lead time",
    history: "History",
    sponsor: "project sponsor",
  },
}[LANG];
assert.ok(BIN, "set GUICHET_BIN to the guichet binary");
mkdirSync(SHOTS, { recursive: true });

const deadline = Date.now() + 150_000;
const log = (...a) => console.log(`[e2e ${new Date().toISOString().slice(11, 19)}]`, ...a);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

// The SMTP server: every message parsed, with its envelope recipients.
const mails = [];
const smtp = new SMTPServer({
  authOptional: true,
  disabledCommands: ["STARTTLS"],
  logger: false,
  onData(stream, session, callback) {
    simpleParser(stream)
      .then((m) => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), mail: m });
        callback();
      })
      .catch(callback);
  },
});
const smtpPort = await freePort();
await new Promise((r) => smtp.listen(smtpPort, "127.0.0.1", r));

const webPort = await freePort();
const base = `http://127.0.0.1:${webPort}`;
const dir = mkdtempSync(join(tmpdir(), "guichet-e2e-"));
const env = {
  ...process.env,
  GUICHET_DATABASE: `sqlite://${join(dir, "desk.db")}`,
  GUICHET_LISTEN: `127.0.0.1:${webPort}`,
  GUICHET_BASE_URL: base,
  GUICHET_SMTP_HOST: "127.0.0.1",
  GUICHET_SMTP_PORT: String(smtpPort),
  GUICHET_SMTP_TLS: "none",
  GUICHET_MAIL_FROM: "Guichet <guichet@hopital.example>",
};

function run(args, input) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env: { ...env, ...input }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${args}: ${code}\n${out}`))));
  });
}

// The feasibility committee has an account; everyone else works from their emails.
const COMMITTEE = "comite-faisabilite@hopital.example";
const PASSWORD = "un mot de passe assez long";
const firstStart = await run(["serve", "--once"]);
const adminPassword = firstStart.match(/administrator admin@localhost, password (\S+)/)?.[1];
assert.ok(adminPassword, `no first-start administrator in:\n${firstStart}`);
await run(["user", "add", COMMITTEE], { GUICHET_PASSWORD: PASSWORD });
// Five requests of model (a) driven to their end, so the dashboard has facts to show.
await run(["bench", "--desk", "interne-decentralise", "--requests", "5", "--concurrency", "1"]);
// The documents the sponsor sends: the protocol with the intake, a data dictionary with the
// answer to the request for more information.
const PROTOCOL = Buffer.from("%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n% protocole de la cohorte\n%%EOF\n");
const DICTIONARY = Buffer.from("variable;définition\nhba1c;hémoglobine glyquée (%)\n");

const server = spawn(BIN, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
let serverLog = "";
server.stdout.on("data", (d) => (serverLog += d));
server.stderr.on("data", (d) => (serverLog += d));

let browser;
let failed = false;
try {
  // Wait for the server.
  for (;;) {
    try {
      if ((await fetch(`${base}/healthz`)).ok) break;
    } catch {}
    assert.ok(Date.now() < deadline, `the server did not answer:\n${serverLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  let shot = 0;
  // Every page shown is also checked by axe-core (WCAG 2.1 A and AA rules): a serious or
  // critical violation anywhere fails the walk, with the rule, the page and the elements.
  const inaccessible = [];
  {
    // The judge is live: on a page made with an unlabelled field, it reports it.
    const probe = await (await browser.newContext({ locale: SAYS.locale })).newPage();
    await probe.setContent('<!DOCTYPE html><html lang="fr"><head><title>t</title></head><body><main><input type="text"></main></body></html>');
    const { violations } = await new AxeBuilder({ page: probe }).analyze();
    assert.ok(violations.some((v) => v.id === "label" && v.impact === "critical"), "axe-core did not flag an unlabelled field");
    await probe.context().close();
  }
  // Every browser of the walk asks for its language.
  const newPage = async () => (await browser.newContext({ locale: SAYS.locale })).newPage();
  const snap = async (page, name) => {
    shot += 1;
    assert.equal(await page.getAttribute("html", "lang"), LANG, `${name} (${page.url()}) is not in ${LANG}`);
    await page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
    const { violations } = await new AxeBuilder({ page })
      .withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"])
      .analyze();
    for (const v of violations.filter((v) => v.impact === "serious" || v.impact === "critical")) {
      inaccessible.push(`${name} (${page.url()}): ${v.id} [${v.impact}] ${v.help}: ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`);
    }
  };

  // The emails to one address that match, oldest first; waits until there are `atLeast`.
  async function mailsTo(address, matches = () => true, atLeast = 1) {
    for (;;) {
      const got = mails.filter((m) => m.to.includes(address) && matches(m));
      if (got.length >= atLeast) return got;
      assert.ok(
        Date.now() < deadline,
        `no such email for ${address}; got:\n` + mails.map((m) => `${m.to} ${m.mail.subject}`).join("\n"),
      );
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const linkIn = (m) => {
    const found = m.mail.text.match(/https?:\/\/[^\s]+\/l\/[A-Za-z0-9_-]+/);
    assert.ok(found, `no link in: ${m.mail.text}`);
    return found[0];
  };

  // 1. The sponsor submits the intake form of desk (a).
  const sponsor = await newPage();
  await sponsor.goto(base + "/");
  await snap(sponsor, "portal");
  await sponsor.click('a[href="/desks/interne-decentralise"]');
  await snap(sponsor, "intake-form");
  // Submitting empty shows the errors next to the fields, and saves nothing.
  await sponsor.click('button[type="submit"]');
  assert.ok(await sponsor.locator("#e-titre").isVisible(), "no error next to the title");
  await snap(sponsor, "intake-errors");
  await sponsor.fill("#f-titre", TITLE);
  await sponsor.fill("#f-email", "investigatrice@univ.example");
  await sponsor.fill("#f-organisme", "Laboratoire d'épidémiologie");
  await sponsor.selectOption("#f-type-porteur", "academique");
  await sponsor.selectOption("#f-cadre", "collaboratif");
  await sponsor.fill("#f-resume", "Étude des parcours de soins des patients diabétiques.");
  await sponsor.fill("#f-donnees", "Séjours 2015-2025, biologie, traitements.");
  await sponsor.selectOption("#f-dans-catalogue", "true");
  await sponsor.setInputFiles("#f-protocole", { name: "protocole-cohorte.pdf", mimeType: "application/pdf", buffer: PROTOCOL });
  await sponsor.click('button[type="submit"]');
  await sponsor.waitForSelector(`text=${SAYS.submitted}`);
  const reference = await sponsor.locator("strong").first().textContent();
  log("submitted", reference);
  await snap(sponsor, "submitted");

  // Opens a task from its email and decides it in a fresh browser context (the recipient's).
  async function decideFromEmail(address, subjectHas, outcome, fill = async () => {}, nth = 1) {
    const got = await mailsTo(address, (m) => m.mail.subject.includes(subjectHas) && m.mail.text.includes(TITLE), nth);
    const m = got[got.length - 1];
    // No case data in the email beyond title, step, deadline and link.
    assert.ok(!m.mail.text.includes("parcours de soins"), "the summary leaked into an email");
    const ctx = await browser.newContext({ locale: SAYS.locale });
    const page = await ctx.newPage();
    const url = linkIn(m);
    await page.goto(url);
    // Opening the link twice changes nothing: the page still offers the decision.
    await page.reload();
    // The reviewer sees what the sponsor submitted, with the form's labels, and its protocol,
    // which downloads as it was sent.
    const seen = await page.content();
    const protocol = page.locator('a:has-text("protocole-cohorte.pdf")');
    assert.equal(await protocol.count(), 1, "the task page does not link the protocol");
    const file = await page.request.get(new URL(await protocol.getAttribute("href"), page.url()).href);
    assert.equal(file.status(), 200);
    assert.ok(Buffer.compare(await file.body(), PROTOCOL) === 0, "the protocol downloaded differs");
    assert.match(file.headers()["content-disposition"], /^attachment;/);
    assert.ok(SAYS.intake.every((label) => seen.includes(label)), "the task page does not show the intake");
    assert.ok(seen.includes("Étude des parcours de soins des patients diabétiques."), "the task page does not show the summary");
    await snap(page, `task-${subjectHas.replace(/\W+/g, "-").toLowerCase()}`);
    await fill(page);
    await page.click(`button[name="_outcome"][value="${outcome}"]`);
    await page.waitForLoadState();
    await snap(page, `done-${subjectHas.replace(/\W+/g, "-").toLowerCase()}`);
    // The link is spent: opening it again shows the same page as a forged one.
    await page.goto(url);
    await page.waitForSelector(`text=${SAYS.spent}`);
    await snap(page, `spent-${subjectHas.replace(/\W+/g, "-").toLowerCase()}`);
    await ctx.close();
    log("decided", subjectHas, "as", outcome, "for", address);
  }

  // 2. The desk asks for more information (with a comment for its colleagues); the sponsor
  // answers from the page their email opens; the desk then finds the request admissible.
  await decideFromEmail("guichet-donnees@hopital.example", "Examen de recevabilité", "complement", async (p) => {
    await p.fill("#f-_comment", "Préciser les variables de biologie.");
  });
  const [asked] = await mailsTo("investigatrice@univ.example", (m) => m.mail.subject.includes(SAYS.moreInformation));
  await sponsor.goto(linkIn(asked));
  await sponsor.waitForSelector(`text=${SAYS.asked}`);
  assert.ok(!(await sponsor.content()).includes("Préciser les variables"), "a staff comment reached the sponsor");
  await snap(sponsor, "sponsor-asked");
  await sponsor.click('form:has(input[name="_step"]) button[type="submit"]');
  assert.ok(await sponsor.locator("#e-reponse-complement-reponse").isVisible(), "no error next to the answer");
  assert.equal(await sponsor.getAttribute("#f-reponse-complement-reponse", "aria-invalid"), "true");
  await sponsor.fill("#f-reponse-complement-reponse", "HbA1c, glycémie à jeun, créatinine.");
  await sponsor.setInputFiles("#f-reponse-complement-piece-jointe", { name: "dictionnaire.csv", mimeType: "text/csv", buffer: DICTIONARY });
  await sponsor.click('form:has(input[name="_step"]) button[type="submit"]');
  await sponsor.waitForSelector(`text=${SAYS.answered}`);
  await snap(sponsor, "sponsor-answered");
  log("the sponsor answered the request for more information");
  await decideFromEmail("guichet-donnees@hopital.example", "Examen de recevabilité", "recevable", async (p) => {
    assert.ok((await p.content()).includes("HbA1c, glycémie à jeun, créatinine."), "the reviewer does not see the answer");
    assert.equal(await p.locator('a:has-text("dictionnaire.csv")').count(), 1, "the reviewer does not see the answer's document");
  }, 2);
  // 3. The three feasibility studies, in parallel.
  await decideFromEmail("juriste@hopital.example", "Faisabilité juridique", "favorable", async (p) => {
    await p.selectOption("#f-base-legale", "mr-004");
    await p.fill("#f-avis", "Conforme à la MR-004.");
  });
  await decideFromEmail("comite-scientifique@hopital.example", "Faisabilité scientifique", "favorable");
  await decideFromEmail("datalake@hopital.example", "Faisabilité technique", "faisable", async (p) => {
    await p.selectOption("#f-travaux-supplementaires", "false");
  });

  // 4. The committee signs in, finds the task in its inbox, takes it and approves.
  const committee = await newPage();
  await committee.goto(base + "/login");
  await committee.fill("#f-email", COMMITTEE);
  await committee.fill("#f-password", "wrong password!");
  await committee.click('button[type="submit"]');
  assert.ok(await committee.locator(`text=${SAYS.wrongPassword}`).isVisible());
  await committee.fill("#f-password", PASSWORD);
  await committee.click('button[type="submit"]');
  for (;;) {
    await committee.goto(base + "/inbox");
    if ((await committee.locator(`text=${SAYS.committee}`).count()) > 0) break;
    assert.ok(Date.now() < deadline, "the committee task never reached the inbox");
    await new Promise((r) => setTimeout(r, 200));
  }
  await snap(committee, "inbox");
  await committee.click(`a:has-text('${SAYS.committee}')`);
  await committee.click('button[value="claim"]');
  await committee.waitForSelector(`text=${SAYS.claimedBy} ${COMMITTEE}`);
  await snap(committee, "committee-task");
  await committee.click('button[name="_outcome"][value="accepte"]');
  await committee.waitForLoadState();
  await snap(committee, "committee-done");
  log("committee approved");

  // 5. Negotiation, legal review, signature.
  await decideFromEmail("valorisation@hopital.example", "Négociation du contrat", "projet-pret", async (p) => {
    await p.fill("#f-montant", "12000");
  });
  await decideFromEmail("juriste@hopital.example", "Revue juridique du contrat", "valide");
  await decideFromEmail("direction-recherche@hopital.example", "Signature du contrat", "signe", async (p) => {
    await p.fill("#f-date-signature", "2027-02-01");
  });

  // 6. The sponsor follows the status link of the confirmation email.
  const [received] = await mailsTo("investigatrice@univ.example", (m) => m.mail.text.includes("/l/") && m.mail.text.includes(TITLE));
  await sponsor.goto(linkIn(received));
  await sponsor.waitForSelector(`text=${SAYS.sponsorHeading}`);
  const page = await sponsor.content();
  assert.ok(page.includes(SAYS.signed), "the status does not show the signature");
  await snap(sponsor, "sponsor-status");
  // Told at each stage by email: received, contract to sign, accepted.
  await mailsTo("investigatrice@univ.example", (m) => /accept/i.test(m.mail.subject));
  // 7. The administrator reads the dashboard: charts rendered, with their tables.
  const admin = await newPage();
  await admin.goto(base + "/login");
  await admin.fill("#f-email", "admin@localhost");
  await admin.fill("#f-password", adminPassword);
  await admin.click('button[type="submit"]');
  await admin.click("a:has-text('Administration')");
  await snap(admin, "admin");
  await admin.click(`nav.admin a:has-text('${SAYS.indicators}')`);
  await admin.waitForSelector(`text=${SAYS.leadTime}`);
  const charts = await admin.locator("figure svg").count();
  assert.ok(charts >= 3, `only ${charts} charts on the dashboard`);
  const box = await admin.locator("figure svg").first().boundingBox();
  assert.ok(box && box.width > 300 && box.height > 80, `the first chart is not drawn: ${JSON.stringify(box)}`);
  await snap(admin, "admin-indicators");
  await admin.goto(base + "/admin/requests?status=running");
  assert.ok((await admin.content()).includes(TITLE), "the running request is not listed");
  await snap(admin, "admin-requests");
  // The whole timeline: who did what, with the staff's comments, and the sponsor's answer.
  await admin.click(`tr:has-text("${TITLE}") a`);
  await admin.waitForSelector(`text=${SAYS.history}`);
  const whole = await admin.content();
  for (const expected of [
    "Préciser les variables de biologie.",
    "guichet-donnees@hopital.example",
    SAYS.sponsor,
    "HbA1c, glycémie à jeun, créatinine.",
    SAYS.signed,
  ]) {
    assert.ok(whole.includes(expected), `the request page lacks: ${expected}`);
  }
  await snap(admin, "admin-request");
  await admin.goto(base + "/admin/outbox");
  await snap(admin, "admin-outbox");
  await admin.goto(base + "/admin/users");
  await snap(admin, "admin-users");
  assert.deepEqual(inaccessible, [], `axe-core found serious or critical violations:\n${inaccessible.join("\n")}`);
  log(`axe-core: no serious or critical violation on ${shot} pages`);
  const subjects = mails.filter((m) => m.to.includes("investigatrice@univ.example")).map((m) => m.mail.subject);
  log("sponsor emails:", subjects.join(" | "));
  // Received, more information asked, contract to sign, accepted: in the walk's language.
  assert.equal(subjects.length, 4, `${subjects}`);
  assert.ok(subjects[0].includes(SAYS.received), `the first email is not in ${LANG}: ${subjects}`);
  log(`ok: ${mails.length} emails, ${shot} screenshots in ${SHOTS}`);
} catch (e) {
  failed = true;
  console.error(e);
  console.error("server log:\n" + serverLog);
} finally {
  if (browser) await browser.close();
  server.kill("SIGINT");
  await new Promise((r) => server.on("exit", r));
  smtp.close();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
