/** The Duet console app (issue 6). */
import '../shared/style.css';
import { render } from 'preact';
import { t, useLang } from '../shared/i18n.js';
import { Header, registerServiceWorker } from '../shared/ui.js';

function App() {
  useLang();
  return <Header title={t('Duet console', 'Duet 运营控制台')} />;
}

const root = document.getElementById('app');
if (root !== null) render(<App />, root);
registerServiceWorker();
