/** Every resource module of the service; the app refuses to start unless they cover every route. */
import type { OperationHandlers } from '../core/types.js';
import { handlers as accounts } from './accounts.js';
import { handlers as certificates } from './certificates.js';
import { handlers as inventory } from './inventory.js';
import { handlers as update } from './update.js';
import { handlers as chassis } from './chassis.js';
import { handlers as ethernet } from './ethernet.js';
import { handlers as events } from './events.js';
import { handlers as logs } from './logs.js';
import { handlers as managerEthernet } from './manager-ethernet.js';
import { handlers as managers } from './managers.js';
import { handlers as metadata } from './metadata.js';
import { handlers as odata } from './odata.js';
import { handlers as registries } from './registries.js';
import { handlers as serviceroot } from './serviceroot.js';
import { handlers as sessions } from './sessions.js';
import { handlers as sse } from './sse.js';
import { handlers as systems } from './systems.js';
import { handlers as tasks } from './tasks.js';
import { handlers as virtualmedia } from './virtualmedia.js';
import { handlers as volumes } from './volumes.js';

export const modules: readonly OperationHandlers[] = [
  serviceroot,
  metadata,
  odata,
  sessions,
  accounts,
  registries,
  systems,
  ethernet,
  virtualmedia,
  managers,
  managerEthernet,
  chassis,
  tasks,
  inventory,
  volumes,
  update,
  certificates,
  events,
  sse,
  logs,
];
