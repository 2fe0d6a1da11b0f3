// Browser test of the console with Debian's chromium and playwright-core:
// run by TestBrowser (services/console/internal/app) against a console on a
// running stack with replayed data. Environment: CONSOLE_URL, SKU, LOCATION
// (a series with proposals), POLICY_MOQ, ARTIFACTS (screenshot directory).
import { chromium } from 'playwright-core'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import os, { tmpdir } from 'node:os'
import { join } from 'node:path'
import assert from 'node:assert/strict'

const url = process.env.CONSOLE_URL
const sku = process.env.SKU, loc = process.env.LOCATION
const moq = process.env.POLICY_MOQ
// A proposed proposal (policy moq 12, pack size 6) the planner approves.
const proposalId = process.env.PROPOSAL_ID, pSku = process.env.PROPOSAL_SKU, pLoc = process.env.PROPOSAL_LOCATION
// The registry's champion (scored the replay) and a challenger.
const champion = process.env.CHAMPION, challenger = process.env.CHALLENGER
const artifacts = process.env.ARTIFACTS
mkdirSync(artifacts, { recursive: true })

const profile = mkdtempSync(join(tmpdir(), 'console-chromium-'))
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const page = ctx.pages()[0] || (await ctx.newPage())
const consoleErrors = []
page.on('pageerror', (e) => consoleErrors.push(String(e)))
page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()) })
const shot = (name) => page.screenshot({ path: join(artifacts, name + '.png'), fullPage: true })
let passed = 0
async function step(name, fn) {
  const t0 = Date.now()
  try {
    await fn()
  } catch (e) {
    await shot('failed-' + name.replace(/\W+/g, '-')).catch(() => {})
    throw new Error(`${name}: ${e.message}`)
  }
  passed++
  console.log(`ok ${name} (${Date.now() - t0} ms)`)
}

async function login(user) {
  await page.fill('input[name=username]', user)
  await page.fill('input[name=password]', user + '-pw')
  await page.click('button[type=submit]')
  await page.getByTestId('who').filter({ hasText: user }).waitFor()
}

try {
  await step('first load under 1 s', async () => {
    // Cold cache (cleared before each try) but a warm renderer for the
    // console's origin (a request to /api/me, never cached, starts it): the
    // time from the navigation's start to the login form (a mark the app
    // sets), on the page's own clock; the best of three, under 1 s. The
    // load average is reported: the stack and the browser share the CPUs.
    const cdp = await ctx.newCDPSession(page)
    await page.goto(url + '/api/me')
    const tries = []
    let detail = ''
    for (let i = 0; i < 3; i++) {
      await cdp.send('Network.clearBrowserCache')
      await page.goto(url + '/api/me')
      await page.goto(url + '/', { waitUntil: 'commit' })
      await page.waitForSelector('form.login button')
      const shown = await page.evaluate(() => Math.round(performance.getEntriesByName('console-login-shown')[0].startTime))
      const nav = await page.evaluate(() => performance.getEntriesByType('navigation')[0].toJSON())
      const res = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => `${r.name.replace(/^https?:\/\/[^/]+/, '')} ${Math.round(r.startTime)}-${Math.round(r.responseEnd)} ms ${r.transferSize} B`))
      tries.push(shown)
      if (shown === Math.min(...tries)) detail = `document ${Math.round(nav.responseEnd)} ms, ${res.join(', ')}`
    }
    const best = Math.min(...tries)
    const budget = 1000
    console.log(`first load: login form shown after ${best} ms (tries ${tries.join(', ')} ms; best: ${detail}); load ${os.loadavg()[0].toFixed(1)} on ${os.cpus().length} cores, budget ${budget} ms`)
    assert.ok(best < budget, `first load took ${best} ms, budget ${budget} ms`)
  })

  await step('wrong password refused', async () => {
    await page.fill('input[name=username]', 'vera')
    await page.fill('input[name=password]', 'nope')
    await page.click('button[type=submit]')
    await page.getByRole('alert').filter({ hasText: 'wrong user name or password' }).waitFor()
  })

  await step('overview loads with live numbers', async () => {
    await login('vera')
    await page.getByTestId('proposals-today').waitFor()
    // Two stream updates at least: the numbers are live.
    await page.getByTestId('updated').filter({ hasText: /[2-9] updates|\d\d+ updates/ }).waitFor({ timeout: 15000 })
    const rows = page.locator('[data-testid=services] tbody tr')
    assert.equal(await rows.count(), 4)
    for (let i = 0; i < 4; i++) assert.equal(await rows.nth(i).locator('td').nth(1).innerText(), 'yes')
    const ingestConsumed = Number((await rows.nth(0).locator('td').nth(2).innerText()).replace(/,/g, ''))
    assert.ok(ingestConsumed > 1000, `ingest consumed ${ingestConsumed}`)
    const today = await page.getByTestId('proposals-today').locator('.value').innerText()
    assert.ok(Number(today.replace(/,/g, '')) > 0, `proposals today ${today}`)
    const fresh = await page.getByTestId('freshness').locator('.value').innerText()
    assert.notEqual(fresh, '–')
    // The projected fill rate comes with the first alert evaluation.
    await page.getByTestId('fill-rate').locator('.value').filter({ hasText: /%$/ }).waitFor({ timeout: 15000 })
    await shot('overview')
  })

  await step('a series is found and its charts render real data', async () => {
    await page.click('nav >> text=Series')
    await page.fill('input[name=q]', sku)
    await page.click('form.row button[type=submit]')
    await page.getByTestId('series-hits').waitFor()
    await page.locator(`[data-testid=series-hits] tbody tr:has(td:text-is("${loc}")) a:text-is("${sku}")`).first().click()
    await page.getByTestId('fan-chart').waitFor()
    const bars = await page.getByTestId('history-bar').count()
    assert.ok(bars > 0, 'no history bars')
    assert.equal(await page.getByTestId('forecast-mean').count(), 1)
    assert.ok((await page.locator('[data-testid=fan-chart] path.band').count()) >= 1, 'no quantile bands')
    await page.getByTestId('stock-chart').waitFor()
    assert.ok((await page.locator('[data-testid=events] tbody tr').count()) > 0, 'no events')
    assert.match(await page.getByTestId('model').innerText(), /model/)
    // the champion scored it: its version and the features' attributions
    assert.match(await page.getByTestId('model').innerText(), new RegExp(champion))
    assert.ok((await page.locator('[data-testid=attributions] tbody tr').count()) > 3, 'no global model attributions')
    // A viewer sees the policy but cannot change it.
    assert.ok(await page.locator('[data-testid=policy] input[name=moq]').isDisabled())
    assert.equal(await page.locator('[data-testid=policy] button').count(), 0)
    await shot('series')
  })

  await step('a viewer is refused a change', async () => {
    const r = await page.evaluate(async ([sku, loc]) => {
      const me = await (await fetch('/api/me')).json()
      const resp = await fetch('/api/policy', {
        method: 'PUT', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token },
        body: JSON.stringify({ sku, location: loc, service_level: 0.9, lead_time_days: 3, moq: 99, pack_size: 1 }),
      })
      return { status: resp.status, body: await resp.json() }
    }, [sku, loc])
    assert.equal(r.status, 403)
    assert.match(r.body.error, /planner/)
  })

  await step('proposals page: sort, page, export', async () => {
    await page.click('nav >> text=Proposals')
    await page.getByTestId('proposals').waitFor()
    const rows = page.locator('[data-testid=proposals] tbody tr')
    assert.ok((await rows.count()) > 0)
    await page.click('th:has-text("qty")')
    await page.locator('[data-testid=proposals][data-shown="quantity:desc:1"]').waitFor()
    const q = await rows.locator('td:nth-child(4)').allInnerTexts()
    const nums = q.map((s) => Number(s.replace(/,/g, '')))
    for (let i = 1; i < nums.length; i++) assert.ok(nums[i] <= nums[i - 1], `not descending: ${nums}`)
    const pageText = await page.getByTestId('page').innerText()
    const total = Number(pageText.match(/· ([\d,]+) proposals/)[1].replace(/,/g, ''))
    if (total > 50) {
      await page.click('button:has-text("next")')
      await page.locator('[data-testid=proposals][data-shown="quantity:desc:2"]').waitFor()
    }
    const href = await page.locator('a:has-text("Export CSV")').getAttribute('href')
    const csv = await page.request.get(url + href)
    assert.equal(csv.status(), 200)
    const lines = (await csv.text()).trim().split('\n')
    assert.equal(lines.length, total + 1, `csv has ${lines.length} lines for ${total} proposals`)
    await shot('proposals')
  })

  await step('a viewer gets no review buttons and a 403 from the endpoint', async () => {
    await page.click('nav >> text=Proposals')
    await page.getByTestId('proposals').waitFor()
    assert.equal(await page.locator('[data-testid=proposals] th:text-is("review")').count(), 0)
    assert.equal(await page.locator('[data-testid=proposals] button:has-text("Approve")').count(), 0)
    const r = await page.evaluate(async (id) => {
      const me = await (await fetch('/api/me')).json()
      const resp = await fetch(`/api/proposals/${id}/approve`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token }, body: JSON.stringify({ quantity: 24 }),
      })
      return { status: resp.status, body: await resp.json() }
    }, proposalId)
    assert.equal(r.status, 403)
    assert.match(r.body.error, /planner/)
  })

  await step('alerts page and badge', async () => {
    await page.getByTestId('alert-badge').waitFor({ timeout: 15000 })
    await page.click('nav >> text=Alerts')
    await page.getByTestId('alerts').waitFor()
    assert.ok((await page.locator('[data-testid=alerts] tbody tr').count()) > 0)
    assert.match(await page.getByTestId('alerts-summary').innerText(), /[1-9][\d,]* alerts/)
    await shot('alerts')
  })

  await step('reports page with downloads', async () => {
    await page.click('nav >> text=Reports')
    await page.getByTestId('report-kpis').waitFor({ timeout: 15000 })
    assert.notEqual(await page.getByTestId('kpi-stock-value').locator('.value').innerText(), '–')
    for (const f of ['csv', 'pdf', 'html']) {
      const href = await page.locator(`a:has-text("Download ${f.toUpperCase()}")`).getAttribute('href')
      const resp = await page.request.get(url + href)
      assert.equal(resp.status(), 200, f)
      const body = await resp.body()
      assert.ok(body.length > 100, `${f}: ${body.length} bytes`)
      if (f === 'pdf') assert.equal(body.subarray(0, 5).toString(), '%PDF-')
      if (f === 'csv') assert.match(body.toString(), /^kpi,value\n/)
    }
    await shot('reports')
  })

  await step('models page: the real champion and a challenger against it', async () => {
    await page.click('nav >> text=Models')
    await page.locator('h3:has-text("Live accuracy by day")').waitFor()
    await page.getByTestId('champion').filter({ hasText: champion }).waitFor()
    assert.match(await page.getByTestId('champion').innerText(), /data set online-retail\), WRMSSE \d+\.\d{3}/)
    const cells = async (version) => page.locator(`[data-testid=models] tbody tr:has(td:text-is("${version}")) td`).allInnerTexts()
    const champ = await cells(champion), chall = await cells(challenger)
    assert.equal(champ[1], 'champion')
    assert.equal(chall[1], 'challenger')
    // the challenger's backtest: its WRMSSE and the champion's on the same days
    assert.match(chall[4], /^\d+\.\d{3}$/)
    assert.equal(chall[11], champ[4], 'the challenger is compared with the champion\'s WRMSSE')
    assert.ok((await page.locator('[data-testid=models-chart] circle, [data-testid=models-chart] path').count()) > 0, 'no WRMSSE chart')
    assert.ok((await page.locator('[data-testid=accuracy] tbody tr').count()) > 0, 'no live accuracy')
    await shot('models')
  })

  await step('data quality page', async () => {
    await page.click('nav >> text=Data quality')
    await page.locator('h2:has-text("Data quality")').waitFor()
    await shot('data-quality')
  })

  await step('a planner changes the policy through the replenishment API', async () => {
    await page.click('text=Log out')
    await page.locator('form.login').waitFor()
    await login('paul')
    await page.goto(`${url}/#/series?key=${encodeURIComponent(sku + '|' + loc)}`)
    await page.getByTestId('policy').waitFor()
    await page.fill('[data-testid=policy] input[name=moq]', moq)
    await page.click('[data-testid=policy] button[type=submit]')
    await page.getByRole('status').filter({ hasText: 'saved' }).waitFor()
    await page.locator('[data-testid=policy] h4:has-text("(series)")').waitFor()
    await shot('policy-saved')
  })

  await step('a planner approves a proposal with an adjusted quantity', async () => {
    await page.click('nav >> text=Proposals')
    await page.getByTestId('proposals').waitFor()
    await page.fill('input[name=sku]', pSku)
    await page.fill('input[name=location]', pLoc)
    await page.click('form.row button[type=submit]')
    const row = page.locator(`tr[data-proposal="${proposalId}"]`)
    await row.waitFor()
    // A quantity off the pack size: the service's refusal, inline.
    await row.locator('input[name=quantity]').fill('13')
    await row.locator('button:has-text("Approve")').click()
    await page.getByTestId('review-error').filter({ hasText: 'pack_size' }).waitFor()
    await shot('approve-refused')
    await row.locator('input[name=quantity]').fill('24')
    await row.locator('button:has-text("Approve")').click()
    await row.getByTestId('status').filter({ hasText: 'approved 24' }).waitFor()
    assert.match(await row.getByTestId('status').innerText(), /by paul/)
    assert.equal(await page.getByTestId('review-error').count(), 0)
    await shot('proposal-approved')
  })

  assert.deepEqual(consoleErrors.filter((e) => !/401|403|status of 400/.test(e)), [], 'browser console errors')
  console.log(`${passed} passed, 0 failed`)
} finally {
  await ctx.close()
  rmSync(profile, { recursive: true, force: true })
}
