// A person signs in through a real browser: Debian's chromium, driven by playwright-core (never
// a downloaded browser). Opens the stand-in single-page app at argv[2], which sends the browser
// to userledger's login page; types the username and password like a person; waits for the app
// to come back with the code, trade it for tokens and call two API routes with fetch() (real
// CORS preflights: nothing is intercepted). Prints the app's result (JSON) on stdout.
import { chromium } from 'playwright-core';

const [app, username, password] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
try {
  const page = await browser.newPage();
  const console_lines = [];
  page.on('console', (message) => console_lines.push(message.text()));
  await page.goto(app);
  await page.waitForURL(/\/login\?/, { timeout: 15_000 });
  const title = await page.title();
  await page.getByLabel('Username or email').pressSequentially(username, { delay: 10 });
  await page.getByLabel('Password').pressSequentially(password, { delay: 10 });
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForSelector('#result', { timeout: 20_000 });
  const result = JSON.parse(await page.textContent('#result'));
  console.log(JSON.stringify({ loginTitle: title, ...result, console: console_lines }));
} finally {
  await browser.close();
}
