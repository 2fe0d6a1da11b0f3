// First-load measurement of a running console (e.g. the demo's) in
// Debian's chromium with playwright-core, on the page's own clock:
//   CONSOLE_URL=http://127.0.0.1:PORT USER_NAME=viewer PASSWORD=... node e2e/firstload.mjs
// Cold: the browser cache cleared before each try. Warm: the same page
// loaded again with the cache kept. Two moments from the navigation's
// start: the login form shown (logged out), and the overview's numbers
// shown (logged in: the app, /api/me and /api/overview). TRIES (5) of each;
// prints every try, the median and the best, and the load average.
import { chromium } from 'playwright-core'
import { mkdtempSync, rmSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { join } from 'node:path'

const url = process.env.CONSOLE_URL
const tries = Number(process.env.TRIES || 5)
const profile = mkdtempSync(join(tmpdir(), 'console-firstload-'))
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
})
const page = ctx.pages()[0] || (await ctx.newPage())
const cdp = await ctx.newCDPSession(page)

// since returns the ms from the navigation's start to when selector shows.
async function since(selector) {
  await page.waitForSelector(selector)
  return page.evaluate(() => Math.round(performance.now()))
}

async function measure(label, selector, cold) {
  const ms = []
  await page.goto(url + '/api/me') // the origin's renderer is warm in every case
  for (let i = 0; i < tries; i++) {
    if (cold) await cdp.send('Network.clearBrowserCache')
    await page.goto(url + '/api/me')
    await page.goto(url + '/', { waitUntil: 'commit' })
    ms.push(await since(selector))
  }
  const sorted = [...ms].sort((a, b) => a - b)
  console.log(`${label} ${cold ? 'cold' : 'warm'}: median ${sorted[Math.floor(sorted.length / 2)]} ms, best ${sorted[0]} ms (tries ${ms.join(', ')} ms)`)
}

try {
  await measure('login form', 'form.login button', true)
  await measure('login form', 'form.login button', false)
  await page.goto(url + '/')
  await page.fill('input[name=username]', process.env.USER_NAME || 'viewer')
  await page.fill('input[name=password]', process.env.PASSWORD)
  await page.click('button[type=submit]')
  await page.waitForSelector('[data-testid=proposals-today] .value')
  const overview = '[data-testid=proposals-today] .value:not(:text("–"))'
  await measure('overview numbers', overview, true)
  await measure('overview numbers', overview, false)
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} on ${os.cpus().length} cores`)
} finally {
  await ctx.close()
  rmSync(profile, { recursive: true, force: true })
}
